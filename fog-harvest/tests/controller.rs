//! The controller through its public API: scenarios and properties.

use fog_harvest::{Conditions, Controller, Event, Policy, Reason, RecordingWork, State, WorkCall};
use proptest::prelude::*;

fn good() -> Conditions {
    Conditions::mains()
        .battery(Some(90.0), false)
        .temperature(45.0)
        .user_idle(3600.0)
        .non_fog_cpu(5.0)
        .memory_available(60.0)
}

/// Steps once per second over `from..=to` with `c`, returning every event.
fn run(
    ctl: &mut Controller,
    work: &mut RecordingWork,
    from: u32,
    to: u32,
    c: &Conditions,
) -> Vec<(u32, Event)> {
    let mut events = Vec::new();
    for t in from..=to {
        for e in ctl.step(f64::from(t), c, work).events {
            events.push((t, e));
        }
    }
    events
}

fn transitions(events: &[(u32, Event)]) -> Vec<(u32, State, State)> {
    events
        .iter()
        .filter_map(|(t, e)| match e {
            Event::Transition { from, to, .. } => Some((*t, *from, *to)),
            _ => None,
        })
        .collect()
}

#[test]
fn starts_ineligible_then_becomes_eligible_then_harvests_after_dwell_times() {
    let mut ctl = Controller::new(Policy::default(), 0.0);
    assert_eq!(
        (ctl.state(), ctl.reason()),
        (State::Ineligible, &Reason::Starting)
    );
    let mut work = RecordingWork::default();
    let events = run(&mut ctl, &mut work, 0, 25, &good());
    assert_eq!(
        transitions(&events),
        vec![
            (10, State::Ineligible, State::Eligible),
            (20, State::Eligible, State::Harvesting)
        ]
    );
    assert_eq!(ctl.reason(), &Reason::AllConditionsMet);
    assert_eq!(ctl.cpu_share(), 1.0);
    let calls: Vec<_> = work.calls().copied().collect();
    assert_eq!(
        calls,
        vec![WorkCall::Resume, WorkCall::Throttle { cpu_share: 1.0 }]
    );
}

#[test]
fn a_failing_rule_suspends_only_after_the_grace_period_with_a_checkpoint_first() {
    let mut ctl = Controller::new(Policy::default(), 0.0);
    let mut work = RecordingWork::default();
    run(&mut ctl, &mut work, 0, 50, &good());
    assert_eq!(ctl.state(), State::Harvesting);
    let hot = good().temperature(75.0);
    let events = run(&mut ctl, &mut work, 51, 70, &hot);
    assert_eq!(
        transitions(&events),
        vec![(61, State::Harvesting, State::Suspended)]
    );
    let checkpoint_at = events
        .iter()
        .find(|(_, e)| {
            matches!(
                e,
                Event::Checkpoint {
                    before_suspension: true
                }
            )
        })
        .map(|(t, _)| *t);
    assert_eq!(
        checkpoint_at,
        Some(51),
        "checkpoint as soon as the rule fails"
    );
    let lost: Vec<f64> = events
        .iter()
        .filter_map(|(_, e)| match e {
            Event::Preempted { work_lost_s } => Some(*work_lost_s),
            _ => None,
        })
        .collect();
    assert_eq!(
        lost,
        vec![10.0],
        "only the grace period after the checkpoint is lost"
    );
    assert!(ctl.reason().is_heat());
}

#[test]
fn a_short_blip_inside_the_grace_period_does_not_suspend() {
    let mut ctl = Controller::new(Policy::default(), 0.0);
    let mut work = RecordingWork::default();
    run(&mut ctl, &mut work, 0, 50, &good());
    let hot = good().temperature(75.0);
    run(&mut ctl, &mut work, 51, 55, &hot);
    assert!(
        matches!(ctl.reason(), Reason::Grace { .. }),
        "{}",
        ctl.reason()
    );
    let events = run(&mut ctl, &mut work, 56, 100, &good());
    assert!(transitions(&events).is_empty());
    assert_eq!(ctl.state(), State::Harvesting);
}

#[test]
fn battery_suspension_uses_hysteresis_and_backs_off_five_minutes() {
    let mut ctl = Controller::new(Policy::default(), 0.0);
    let mut work = RecordingWork::default();
    run(&mut ctl, &mut work, 0, 50, &good());
    let low = good().battery(Some(45.0), false);
    run(&mut ctl, &mut work, 51, 80, &low);
    assert_eq!(ctl.state(), State::Suspended);
    // 52% passes the plain 50% rule but not 50% + 5% hysteresis.
    let just_above = good().battery(Some(52.0), false);
    run(&mut ctl, &mut work, 81, 500, &just_above);
    assert_eq!(ctl.state(), State::Suspended);
    assert_eq!(
        ctl.reason(),
        &Reason::BatteryLow {
            percent: 52.0,
            min_percent: 55.0
        }
    );
    // 60%: good, but the back-off runs 300 s from now.
    let recovered = good().battery(Some(60.0), false);
    let events = run(&mut ctl, &mut work, 501, 900, &recovered);
    assert!(
        matches!(ctl.reason(), Reason::AllConditionsMet),
        "{}",
        ctl.reason()
    );
    let t = transitions(&events);
    assert_eq!(t[0], (801, State::Suspended, State::Eligible));
    assert_eq!(t[1], (811, State::Eligible, State::Harvesting));
    let mut c2 = Controller::new(Policy::default(), 0.0);
    let mut w2 = RecordingWork::default();
    run(&mut c2, &mut w2, 0, 50, &good());
    run(&mut c2, &mut w2, 51, 80, &low);
    run(&mut c2, &mut w2, 81, 200, &recovered);
    match c2.reason() {
        Reason::BackOff { remaining_s, after } => {
            assert_eq!(*remaining_s, 181.0);
            assert!(after.is_battery());
        }
        other => panic!("expected a back-off, got {other}"),
    }
}

#[test]
fn keep_in_memory_pauses_without_loss_but_low_memory_always_evicts() {
    let mut policy = Policy::default();
    policy.keep_in_memory = true;
    let mut ctl = Controller::new(policy.clone(), 0.0);
    let mut work = RecordingWork::default();
    run(&mut ctl, &mut work, 0, 50, &good());
    let events = run(&mut ctl, &mut work, 51, 80, &good().user_idle(0.0));
    assert!(events.iter().any(|(_, e)| matches!(e, Event::Paused)));
    assert!(
        !events
            .iter()
            .any(|(_, e)| matches!(e, Event::Preempted { .. }))
    );

    let mut ctl = Controller::new(policy, 0.0);
    run(&mut ctl, &mut work, 0, 50, &good());
    let events = run(&mut ctl, &mut work, 51, 80, &good().memory_available(3.0));
    assert!(
        events
            .iter()
            .any(|(_, e)| matches!(e, Event::Preempted { .. }))
    );
    assert!(matches!(ctl.reason(), Reason::MemoryLow { .. }));
}

#[test]
fn warm_devices_and_active_users_are_throttled_not_stopped() {
    let mut ctl = Controller::new(Policy::default(), 0.0);
    let mut work = RecordingWork::default();
    run(&mut ctl, &mut work, 0, 50, &good());
    run(&mut ctl, &mut work, 51, 70, &good().temperature(67.0));
    assert_eq!(ctl.state(), State::Throttled);
    assert_eq!(ctl.cpu_share(), 0.5);
    assert!(matches!(ctl.reason(), Reason::ThermalThrottle { .. }));
    assert!(
        work.calls()
            .any(|c| *c == WorkCall::Throttle { cpu_share: 0.5 })
    );

    let mut policy = Policy::default();
    policy.in_use_cpu_percent = 20.0;
    let mut ctl = Controller::new(policy, 0.0);
    run(&mut ctl, &mut work, 0, 50, &good());
    run(&mut ctl, &mut work, 51, 70, &good().user_idle(5.0));
    assert_eq!(ctl.state(), State::Throttled);
    assert_eq!(
        ctl.reason(),
        &Reason::UserActiveThrottle { cpu_percent: 20.0 }
    );
}

#[test]
fn time_windows_and_profiles_apply_by_local_time() {
    let policy = Policy::from_toml(
        r#"
        utc_offset_minutes = 60
        [[windows]]
        days = ["mon", "tue", "wed", "thu", "fri"]
        start = "09:00"
        end = "17:00"
        cpu_percent = 25.0
        "#,
    )
    .expect("policy");
    // 2024-01-01 was a Monday; 08:30 UTC is 09:30 local.
    let monday_0930 = policy.minute_of_week(1_704_067_200 + 8 * 3600 + 1800);
    assert_eq!(monday_0930, 9 * 60 + 30);
    let a = policy.assess(&good().at_minute_of_week(monday_0930), None);
    assert_eq!(a.reason(), &Reason::TimeProfile { cpu_percent: 25.0 });
    let saturday = 5 * 1440 + 10 * 60;
    let a = policy.assess(&good().at_minute_of_week(saturday), None);
    assert_eq!(a.reason(), &Reason::OutsideTimeWindow);
}

#[test]
fn running_work_checkpoints_every_interval() {
    let mut ctl = Controller::new(Policy::default(), 0.0);
    let mut work = RecordingWork::default();
    let events = run(&mut ctl, &mut work, 0, 20 + 300, &good());
    let times: Vec<u32> = events
        .iter()
        .filter(|(_, e)| {
            matches!(
                e,
                Event::Checkpoint {
                    before_suspension: false
                }
            )
        })
        .map(|(t, _)| *t)
        .collect();
    assert_eq!(times, vec![80, 140, 200, 260, 320]);
}

fn conditions() -> impl Strategy<Value = Conditions> {
    (
        prop::option::of(0.0..100.0f64),
        any::<bool>(),
        prop::option::of(30.0..90.0f64),
        prop::option::of(0.0..900.0f64),
        prop::option::of(0.0..100.0f64),
        prop::option::of(0.0..100.0f64),
    )
        .prop_map(|(battery, charging, temp, idle, cpu, mem)| {
            let mut c = Conditions::mains();
            if let Some(b) = battery {
                c = c.battery(Some(b), charging);
            }
            if let Some(t) = temp {
                c = c.temperature(t);
            }
            if let Some(i) = idle {
                c = c.user_idle(i);
            }
            if let Some(p) = cpu {
                c = c.non_fog_cpu(p);
            }
            if let Some(m) = mem {
                c = c.memory_available(m);
            }
            c
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// The controller never changes state faster than the dwell time,
    /// whatever the conditions and however time advances.
    #[test]
    fn state_changes_respect_the_dwell_time(
        dwell in 0.0..60.0f64,
        grace in 0.0..30.0f64,
        backoff in 0.0..400.0f64,
        keep in any::<bool>(),
        steps in prop::collection::vec((0.0..20.0f64, 1usize..30, conditions()), 1..60),
    ) {
        let mut policy = Policy::default();
        policy.min_dwell_s = dwell;
        policy.grace_period_s = grace;
        policy.resume_backoff_s = backoff;
        policy.keep_in_memory = keep;
        let mut ctl = Controller::new(policy, 0.0);
        let mut work = RecordingWork::new(8);
        let mut now = 0.0;
        let mut last_change = 0.0;
        for (dt, repeat, c) in &steps {
            for _ in 0..*repeat {
                now += dt;
                let report = ctl.step(now, c, &mut work);
                let changes = report.events.iter().filter(|e| matches!(e, Event::Transition { .. })).count();
                prop_assert!(changes <= 1, "one step made {} changes", changes);
                if changes == 1 {
                    prop_assert!(now - last_change >= dwell - 1e-9,
                        "changed after {} s, dwell {} s", now - last_change, dwell);
                    last_change = now;
                }
                prop_assert!(ctl.since_s() == last_change);
            }
        }
    }
}
