//! Opening the Zenoh session: peer mode, no multicast scouting, TCP
//! endpoints given by the caller. Batching stays on (Zenoh's default) and
//! no publisher is express: express cannot hold 100 k messages/s.

use zenoh::{Session, Wait};

use crate::error::{Result, zenoh_err};

/// A JSON array of endpoint strings.
fn json_list(endpoints: &[String]) -> String {
    let quoted: Vec<String> = endpoints.iter().map(|e| format!("{e:?}")).collect();
    format!("[{}]", quoted.join(","))
}

/// Opens a peer session that listens on `listen` and connects to
/// `connect` (each `tcp/ADDR:PORT`); an empty `listen` listens nowhere.
/// Zenoh retries a connect endpoint that is down on its own, also after
/// the link was up and dropped.
pub fn open(listen: &[String], connect: &[String]) -> Result<Session> {
    let mut config = zenoh::Config::default();
    let set = |config: &mut zenoh::Config, key: &str, value: &str| {
        config.insert_json5(key, value).map_err(zenoh_err("config"))
    };
    set(&mut config, "mode", "\"peer\"")?;
    set(&mut config, "scouting/multicast/enabled", "false")?;
    set(&mut config, "listen/endpoints", &json_list(listen))?;
    set(&mut config, "connect/endpoints", &json_list(connect))?;
    zenoh::open(config).wait().map_err(zenoh_err("open session"))
}
