//! The lifecycle state machine as a property: no sequence of requested
//! transitions leaves it outside its edges.

use fog_exec::TaskState;
use proptest::prelude::*;

const ALL: [TaskState; 8] = [
    TaskState::Pending,
    TaskState::Assigned,
    TaskState::Running,
    TaskState::Succeeded,
    TaskState::Failed,
    TaskState::Cancelled,
    TaskState::Preempted,
    TaskState::Lost,
];

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn only_lifecycle_edges_are_taken(steps in proptest::collection::vec(0usize..8, 0..40)) {
        let mut state = TaskState::Pending;
        for step in steps {
            let next = ALL[step];
            if state.can_move_to(next) {
                // Success and failure are final: nothing leaves them.
                prop_assert!(!matches!(state, TaskState::Succeeded | TaskState::Failed | TaskState::Cancelled));
                state = next;
            }
            prop_assert_eq!(TaskState::parse(state.as_str()), Some(state));
        }
    }
}

#[test]
fn running_is_reached_only_through_assigned() {
    for from in ALL {
        if from.can_move_to(TaskState::Running) {
            assert_eq!(from, TaskState::Assigned);
        }
    }
}
