//! `codejail serve`: openedx/codejail-service's v0 API on the warm path
//! (see `codejail-service`).

use std::path::PathBuf;

use clap::Args;

use crate::{Fail, setup, usage};

/// Options of `serve`.
#[derive(Args)]
pub(crate) struct ServeArgs {
    /// Listen here instead of `[service] listen` (port 0: any free port;
    /// the address is printed).
    #[arg(long, value_name = "ADDR:PORT")]
    listen: Option<std::net::SocketAddr>,
}

/// Runs the service until SIGTERM, SIGINT, SIGHUP (or another of the command's stop
/// signals, caught from its start: one that comes while the pool starts
/// stops the service as soon as it is up); 0 after a graceful stop.
pub(crate) fn serve(
    config: Option<PathBuf>,
    args: ServeArgs,
    stop: &crate::Stop,
) -> Result<u8, Fail> {
    let mut settings = crate::settings(config)?;
    if let Some(listen) = args.listen {
        settings.service.listen = listen;
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| setup(format!("cannot start the runtime: {e}")))?;
    // The address first: one in use, or not this host's, fails at once,
    // before the pool starts (connections that come meanwhile wait in
    // the listen backlog).
    let listener = runtime.block_on(async {
        codejail_service::bind(settings.service.listen)
            .await
            .map_err(setup)
    })?;
    let service = codejail_service::Service::start(&settings).map_err(|e| match e {
        codejail_service::ServeError::NoJail(_) => usage(e),
        e => setup(e),
    })?;
    for check in service.checks() {
        if let Some(why) = &check.failure {
            tell!("codejail serve: start-up check {} failed: {why}", check.id);
        }
    }
    runtime.block_on(async {
        let addr = listener
            .local_addr()
            .map_err(|e| setup(format!("cannot read the listening address: {e}")))?;
        crate::print_line(&format!("codejail serve: listening on http://{addr}"));
        tracing::info!(%addr, "listening");
        // The signal thread of `Stop` has it from the command's start;
        // looked at every 20 ms, which nobody waiting for a stop notices.
        let stopped = async {
            while stop.signal().is_none() {
                tokio::time::sleep(std::time::Duration::from_millis(20)).await;
            }
        };
        service.serve(listener, stopped).await.map_err(setup)
    })?;
    Ok(0)
}
