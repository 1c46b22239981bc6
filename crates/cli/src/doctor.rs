//! `codejail doctor`: what this machine offers, and whether the configured
//! jails would run confined.

use std::path::PathBuf;

use serde_json::{Value, json};

use crate::{Fail, settings};

pub(crate) fn doctor(config: Option<PathBuf>, as_json: bool) -> Result<u8, Fail> {
    let settings = settings(config)?;
    let probe = codejail::Probe::get();
    let jails: Vec<Value> = settings
        .jails
        .iter()
        .map(|(name, config)| {
            let planned = codejail::Jail::new(name, config.clone())
                .map_err(|e| e.to_string())
                .and_then(|j| j.planned_layers().map_err(|e| e.to_string()));
            match planned {
                Ok(layers) => json!({"name": name, "bin": config.bin, "confined": !layers.is_empty(), "layers": layers.names(), "reason": null}),
                Err(why) => json!({"name": name, "bin": config.bin, "confined": false, "layers": [], "reason": why}),
            }
        })
        .collect();
    if as_json {
        let layers: Vec<Value> = probe
            .layers
            .iter()
            .map(|(l, a)| match a {
                codejail::Availability::Yes => {
                    json!({"name": l.name(), "available": true, "reason": null})
                }
                codejail::Availability::No(why) => {
                    json!({"name": l.name(), "available": false, "reason": why})
                }
            })
            .collect();
        let out = json!({
            "layers": layers,
            "landlock_abi": probe.landlock_abi,
            "cgroup": probe.cgroups.version(),
            "jails": jails,
        });
        say!("{out}");
        return Ok(0);
    }
    say_part!("{probe}");
    say!();
    for j in &jails {
        let name = j["name"].as_str().unwrap_or("");
        let bin = j["bin"].as_str().unwrap_or("");
        if j["confined"] == true {
            let layers: Vec<&str> = j["layers"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(Value::as_str)
                .collect();
            say!("jail {name} ({bin}): confined by {}", layers.join(", "));
        } else {
            say!(
                "jail {name} ({bin}): NOT confined: {}",
                j["reason"].as_str().unwrap_or("unsafe mode")
            );
        }
    }
    Ok(0)
}
