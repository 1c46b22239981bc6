//! Start, serve, stop: the jail's leftovers collected, the pool started
//! and checked, connections served until asked to stop, then in-flight
//! requests finished (up to the grace time) and the pool ended.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use codejail::{Jail, Settings};
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;

use crate::api::{self, App};
use crate::pool::Pool;

/// Why the service could not start.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// The settings name no such jail.
    #[error("no jail `{0}` is configured; add [jails.{0}] to the settings file")]
    NoJail(String),
    /// The jail could not be configured.
    #[error(transparent)]
    Config(#[from] codejail::ConfigError),
    /// The pool could not start.
    #[error(transparent)]
    Jail(#[from] codejail::JailError),
    /// The address could not be bound, or the runtime failed.
    #[error("{0}")]
    Io(String),
}

/// How long a client may take to send its request headers.
const HEADER_TIMEOUT: Duration = Duration::from_secs(10);

/// After a stop past its grace has ended the calls, how long the answers
/// still being written get before the server exits.
const FLUSH: Duration = Duration::from_secs(1);

/// The pool and state of a service, ready to serve.
#[derive(Debug)]
pub struct Service {
    app: Arc<App>,
}

impl Service {
    /// Collects what dead codejail processes left in the jail parents,
    /// configures the jail, starts its warm pool and runs the start-up
    /// checks (blocking: seconds).
    ///
    /// # Errors
    /// [`ServeError`].
    pub fn start(settings: &Settings) -> Result<Service, ServeError> {
        let s = &settings.service;
        let report = codejail::gc(&settings.jail_parents(), false);
        if !report.removed.is_empty() {
            tracing::info!(
                removed = report.removed.len(),
                "removed leftovers of dead codejail processes"
            );
        }
        let config = settings
            .jails
            .get(&s.jail)
            .cloned()
            .ok_or_else(|| ServeError::NoJail(s.jail.clone()))?;
        let jail = Arc::new(Jail::new(&s.jail, config)?);
        let pool = Pool::start(jail, s.pool_size, s.queue_length, s.egress_probes.clone())?;
        if !pool.safe() {
            tracing::error!("start-up checks failed: health is 503 and code-exec refused");
        }
        Ok(Service {
            app: App::new(
                pool,
                s.clone(),
                settings.overrides.keys().cloned().collect(),
            ),
        })
    }

    /// The start-up checks' results.
    pub fn checks(&self) -> Vec<crate::checks::CheckResult> {
        self.app.pool.checks()
    }

    /// Serves on `listener` until `stop` completes; then stops accepting,
    /// lets requests in flight finish for the grace time, cancels what is
    /// left and ends the pool.
    ///
    /// # Errors
    /// The listener failed.
    pub async fn serve(
        self,
        listener: tokio::net::TcpListener,
        stop: impl Future<Output = ()>,
    ) -> Result<(), ServeError> {
        let app = self.app;
        let grace = app.settings.shutdown_grace;
        let router = api::router(app.clone());
        let graceful = GracefulShutdown::new();
        let rebuild = {
            let pool = app.pool.clone();
            tokio::spawn(async move {
                loop {
                    tokio::time::sleep(Duration::from_millis(500)).await;
                    let p = pool.clone();
                    let _ = tokio::task::spawn_blocking(move || p.maybe_rebuild()).await;
                }
            })
        };
        tokio::pin!(stop);
        loop {
            tokio::select! {
                () = &mut stop => break,
                accepted = listener.accept() => {
                    let (stream, _) = match accepted {
                        Ok(c) => c,
                        Err(e) => {
                            // Out of descriptors and the like: wait, go on.
                            tracing::warn!(error = %e, "accept failed");
                            tokio::time::sleep(Duration::from_millis(50)).await;
                            continue;
                        }
                    };
                    let _ = stream.set_nodelay(true);
                    let service = TowerToHyperService::new(router.clone());
                    let conn = hyper::server::conn::http1::Builder::new()
                        .timer(TokioTimer::new())
                        .header_read_timeout(HEADER_TIMEOUT)
                        .serve_connection(TokioIo::new(stream), service);
                    let conn = graceful.watch(conn);
                    tokio::spawn(async move {
                        let _ = conn.await;
                    });
                }
            }
        }
        drop(listener);
        let began = Instant::now();
        tracing::info!("stopping: no new connections; finishing requests in flight");
        let connections = graceful.shutdown();
        tokio::pin!(connections);
        let finished = tokio::time::timeout(grace, &mut connections).await.is_ok();
        if !finished {
            tracing::warn!("requests still in flight after {grace:?}; ending them");
        }
        rebuild.abort();
        let left = app.pool.drain(grace.saturating_sub(began.elapsed())).await;
        if left > 0 || !finished {
            // Cancelled: a call running ends at once (within its own
            // limits at worst), one still waiting for an interpreter is
            // answered 503. Then the answers being written get a moment
            // (a request's answer is written after its call has ended), but
            // no more: a client that does not read, or is still sending its
            // body, does not hold the stop.
            let end = Instant::now() + Duration::from_secs(15);
            while app.pool.running() > 0 && Instant::now() < end {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            if tokio::time::timeout(FLUSH, &mut connections).await.is_err() {
                tracing::warn!(
                    "connections still open {FLUSH:?} after the calls ended; closing them"
                );
            }
        }
        drop(router);
        // The last reference ends the pool: its interpreters are killed
        // and its directory removed.
        drop(app);
        tracing::info!("stopped");
        Ok(())
    }
}

/// Binds the settings' address (port 0: any free port).
///
/// # Errors
/// [`ServeError::Io`] naming the address.
pub async fn bind(addr: SocketAddr) -> Result<tokio::net::TcpListener, ServeError> {
    tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|e| ServeError::Io(format!("cannot listen on {addr}: {e}")))
}
