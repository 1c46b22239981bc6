//! The `[service]` section: how `codejail serve` listens and serves
//! codejail-service's v0 API.
//!
//! ```toml
//! [service]
//! listen = "127.0.0.1:8550"    # edx-platform's CODE_JAIL_REST_SERVICE_HOST default
//! enabled = false              # codejail-service's CODEJAIL_ENABLED: off until set
//! jail = "python"              # the configured jail that runs the code
//! pool_size = 2                # warm interpreters; default: the number of CPUs
//! queue_length = 16            # requests waiting for an interpreter; past it: 503
//! max_form_bytes = 2621440     # form fields (the payload): Django's 2.5 MiB
//! max_file_bytes = 16777216    # one uploaded file (python_lib.zip)
//! max_body_bytes = 20971520    # the whole request body
//! request_deadline = 10        # seconds to read the body and get an interpreter
//! shutdown_grace = 10          # seconds in-flight requests get on SIGTERM
//! token = "..."                # optional: require `Authorization: Bearer ...`
//! log_code = false             # log the submitted code (at debug level)
//! egress_probes = ["192.0.2.1:443"]  # where the egress check tries to connect
//! ```

use std::net::SocketAddr;
use std::time::Duration;

use serde::Deserialize;
use toml::Spanned;

/// The `[service]` section, with its defaults filled in.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct ServiceSettings {
    /// Address and port to listen on (default `127.0.0.1:8550`).
    pub listen: SocketAddr,
    /// Whether code-exec requests are served (default off, as
    /// codejail-service's `CODEJAIL_ENABLED`).
    pub enabled: bool,
    /// The configured jail that runs the code (default `python`).
    pub jail: String,
    /// Warm interpreters kept (default: the number of CPUs).
    pub pool_size: usize,
    /// Requests that may wait for an interpreter beyond those running
    /// (default 16); past it the answer is 503 with `Retry-After`.
    pub queue_length: usize,
    /// Bytes of form fields (default 2.5 MiB, Django's
    /// `DATA_UPLOAD_MAX_MEMORY_SIZE`).
    pub max_form_bytes: u64,
    /// Bytes of one uploaded file (default 16 MiB).
    pub max_file_bytes: u64,
    /// Bytes of a whole request body (default 20 MiB).
    pub max_body_bytes: u64,
    /// Time to read a request's body and get an interpreter (default 10 s).
    pub request_deadline: Duration,
    /// Time in-flight requests get to finish on SIGTERM (default 10 s).
    pub shutdown_grace: Duration,
    /// When set, code-exec and metrics requests need
    /// `Authorization: Bearer <token>` (default: none, as edx-platform
    /// sends no credentials).
    pub token: Option<String>,
    /// Whether the submitted code is logged (default off).
    pub log_code: bool,
    /// Addresses the egress check tries to reach from the service process
    /// (default TEST-NET-1 `192.0.2.1:443` and `[2001:db8::1]:443`).
    pub egress_probes: Vec<SocketAddr>,
}

impl Default for ServiceSettings {
    fn default() -> ServiceSettings {
        ServiceSettings {
            listen: SocketAddr::from(([127, 0, 0, 1], 8550)),
            enabled: false,
            jail: "python".into(),
            pool_size: std::thread::available_parallelism().map_or(1, |n| n.get()),
            queue_length: 16,
            max_form_bytes: 2_621_440,
            max_file_bytes: 16 << 20,
            max_body_bytes: 20 << 20,
            request_deadline: Duration::from_secs(10),
            shutdown_grace: Duration::from_secs(10),
            token: None,
            log_code: false,
            egress_probes: vec![
                SocketAddr::from(([192, 0, 2, 1], 443)),
                SocketAddr::from(([0x2001, 0xdb8, 0, 0, 0, 0, 0, 1], 443)),
            ],
        }
    }
}

/// The section as written.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawService {
    listen: Option<Spanned<String>>,
    enabled: Option<bool>,
    jail: Option<String>,
    pool_size: Option<Spanned<i64>>,
    queue_length: Option<Spanned<i64>>,
    max_form_bytes: Option<Spanned<i64>>,
    max_file_bytes: Option<Spanned<i64>>,
    max_body_bytes: Option<Spanned<i64>>,
    request_deadline: Option<Spanned<i64>>,
    shutdown_grace: Option<Spanned<i64>>,
    token: Option<Spanned<String>>,
    log_code: Option<bool>,
    egress_probes: Option<Spanned<Vec<Spanned<String>>>>,
}

/// A bad value: (byte offset, key, message).
type Invalid = (usize, String, String);

impl RawService {
    /// The settings, or the first bad value with where it is.
    pub(super) fn resolve(self) -> Result<ServiceSettings, Invalid> {
        let mut s = ServiceSettings::default();
        let bad = |v: &Spanned<i64>, key: &str, what: &str| {
            (
                v.span().start,
                format!("service.{key}"),
                format!("takes {what}, not {}", v.get_ref()),
            )
        };
        let count = |v: Option<Spanned<i64>>, key: &str, min: i64| {
            v.map(|v| match usize::try_from(*v.get_ref()) {
                Ok(n) if *v.get_ref() >= min => Ok(n),
                _ => Err(bad(&v, key, &format!("a whole number of at least {min}"))),
            })
            .transpose()
        };
        let bytes = |v: Option<Spanned<i64>>, key: &str| {
            v.map(|v| match u64::try_from(*v.get_ref()) {
                Ok(n) if n > 0 => Ok(n),
                _ => Err(bad(&v, key, "a number of bytes above 0")),
            })
            .transpose()
        };
        let seconds = |v: Option<Spanned<i64>>, key: &str| {
            v.map(|v| match u64::try_from(*v.get_ref()) {
                Ok(n) if (1..=86_400).contains(&n) => Ok(Duration::from_secs(n)),
                _ => Err(bad(&v, key, "whole seconds from 1 to 86400")),
            })
            .transpose()
        };
        let address = |v: &Spanned<String>, key: &str| {
            v.get_ref().parse::<SocketAddr>().map_err(|_| {
                (
                    v.span().start,
                    key.to_owned(),
                    format!(
                        "`{}` is not an address and port (like 127.0.0.1:8550 or [::1]:8550)",
                        v.get_ref()
                    ),
                )
            })
        };
        if let Some(listen) = &self.listen {
            s.listen = address(listen, "service.listen")?;
        }
        s.enabled = self.enabled.unwrap_or(s.enabled);
        s.jail = self.jail.unwrap_or(s.jail);
        s.pool_size = count(self.pool_size, "pool_size", 1)?.unwrap_or(s.pool_size);
        s.queue_length = count(self.queue_length, "queue_length", 0)?.unwrap_or(s.queue_length);
        s.max_form_bytes =
            bytes(self.max_form_bytes, "max_form_bytes")?.unwrap_or(s.max_form_bytes);
        s.max_file_bytes =
            bytes(self.max_file_bytes, "max_file_bytes")?.unwrap_or(s.max_file_bytes);
        s.max_body_bytes =
            bytes(self.max_body_bytes, "max_body_bytes")?.unwrap_or(s.max_body_bytes);
        s.request_deadline =
            seconds(self.request_deadline, "request_deadline")?.unwrap_or(s.request_deadline);
        s.shutdown_grace =
            seconds(self.shutdown_grace, "shutdown_grace")?.unwrap_or(s.shutdown_grace);
        if let Some(token) = self.token {
            let t = token.get_ref();
            if t.len() < 16 || !t.bytes().all(|b| b.is_ascii_graphic()) {
                return Err((
                    token.span().start,
                    "service.token".into(),
                    "takes at least 16 printable ASCII characters, no spaces".into(),
                ));
            }
            s.token = Some(t.clone());
        }
        s.log_code = self.log_code.unwrap_or(s.log_code);
        if let Some(probes) = &self.egress_probes {
            s.egress_probes = probes
                .get_ref()
                .iter()
                .map(|p| address(p, "service.egress_probes"))
                .collect::<Result<_, _>>()?;
            if s.egress_probes.is_empty() {
                return Err((
                    probes.span().start,
                    "service.egress_probes".into(),
                    "takes at least one address: the egress check cannot be switched off".into(),
                ));
            }
        }
        Ok(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Settings;
    use std::path::Path;

    fn parse(text: &str) -> Result<Settings, crate::SettingsError> {
        Settings::parse(text, Path::new("codejail.toml"))
    }

    #[test]
    fn defaults_without_a_section_and_values_with_one() {
        let s = parse("").unwrap();
        assert_eq!(s.service, ServiceSettings::default());
        assert_eq!(s.service.listen.to_string(), "127.0.0.1:8550");
        assert!(!s.service.enabled);
        assert_eq!(s.service.max_form_bytes, 2_621_440);
        let s = parse(
            "[service]\nlisten = \"[::1]:9000\"\nenabled = true\npool_size = 3\nqueue_length = 0\n\
             request_deadline = 4\ntoken = \"0123456789abcdef\"\negress_probes = [\"10.1.2.3:80\"]\n",
        )
        .unwrap();
        assert_eq!(s.service.listen.to_string(), "[::1]:9000");
        assert!(s.service.enabled);
        assert_eq!(s.service.pool_size, 3);
        assert_eq!(s.service.queue_length, 0);
        assert_eq!(s.service.request_deadline, Duration::from_secs(4));
        assert_eq!(s.service.token.as_deref(), Some("0123456789abcdef"));
        assert_eq!(s.service.egress_probes.len(), 1);
    }

    #[test]
    fn errors_name_the_file_the_line_and_the_key() {
        for (text, start) in [
            (
                "[service]\nlisten = \"localhost\"\n",
                "codejail.toml:2: service.listen: `localhost` is not an address",
            ),
            (
                "[service]\nenabled = true\npool_size = 0\n",
                "codejail.toml:3: service.pool_size: takes a whole number of at least 1, not 0",
            ),
            (
                "[service]\nmax_body_bytes = -1\n",
                "codejail.toml:2: service.max_body_bytes: takes a number of bytes above 0",
            ),
            (
                "[service]\nrequest_deadline = 0\n",
                "codejail.toml:2: service.request_deadline: takes whole seconds",
            ),
            (
                "[service]\n\ntoken = \"short\"\n",
                "codejail.toml:3: service.token: takes at least 16",
            ),
            (
                "[service]\nlisten = \"127.0.0.1:1\"\nport = 3\n",
                "codejail.toml:3: service.port: unknown field `port`",
            ),
            (
                "[service]\nenabled = \"yes\"\n",
                "codejail.toml:2: service.enabled: invalid type: string",
            ),
            (
                "[service]\negress_probes = []\n",
                "codejail.toml:2: service.egress_probes: takes at least one address",
            ),
        ] {
            let err = parse(text).unwrap_err().to_string();
            assert!(err.starts_with(start), "{text:?}: {err}");
        }
    }
}
