//! The BLE bearer against a real adapter. Without one (as in CI) the test
//! prints `skipped: no bluetooth adapter` and passes.

#![cfg(feature = "ble")]

use fog_mesh::{Bearer, BearerError, BleBearer, BleConfig};

#[tokio::test]
async fn ble_bearer_starts_on_a_real_adapter() {
    let mut bearer = match BleBearer::new(BleConfig::new()).await {
        Ok(bearer) => bearer,
        Err(BearerError::Unavailable(reason)) if reason.starts_with("no bluetooth adapter") => {
            println!("skipped: no bluetooth adapter ({reason})");
            return;
        }
        Err(error) => panic!("ble bearer failed to start on a present adapter: {error}"),
    };
    assert_eq!(bearer.mtu(), 180);
    assert!(bearer.events().is_some());
    // Nobody is linked yet: a broadcast reaches no one and succeeds.
    bearer.broadcast(b"hello").await.unwrap();
    assert!(matches!(
        bearer.send(&BleBearer::link_addr([0; 6]), b"x").await,
        Err(BearerError::UnknownNeighbour(_))
    ));
}

#[tokio::test]
async fn invalid_configs_are_refused_before_touching_the_radio() {
    let mut config = BleConfig::new();
    config.mtu = 4;
    assert!(matches!(
        BleBearer::new(config).await,
        Err(BearerError::Unavailable(reason)) if reason.contains("mtu")
    ));
}
