//! The one shutdown signal every task watches: SIGTERM or Ctrl-C flips it once.

use tokio::sync::watch;

/// A shutdown signal: `receiver()`s see `true` once it fires.
#[derive(Debug, Clone)]
pub struct Shutdown {
    tx: watch::Sender<bool>,
}

impl Default for Shutdown {
    fn default() -> Self {
        Self::new()
    }
}

impl Shutdown {
    /// A signal not yet fired.
    pub fn new() -> Self {
        Self {
            tx: watch::channel(false).0,
        }
    }

    /// A receiver for a task to watch.
    pub fn receiver(&self) -> watch::Receiver<bool> {
        self.tx.subscribe()
    }

    /// Fires the signal.
    pub fn fire(&self) {
        self.tx.send_replace(true);
    }

    /// Completes once the signal has fired.
    pub async fn fired(&self) {
        let mut rx = self.receiver();
        // An error means every sender is gone, which also means shutdown.
        let _ = rx.wait_for(|fired| *fired).await;
    }

    /// Fires the signal on SIGTERM or SIGINT.
    pub fn fire_on_signals(&self) {
        let this = self.clone();
        tokio::spawn(async move {
            let ctrl_c = tokio::signal::ctrl_c();
            #[cfg(unix)]
            {
                let mut term =
                    match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
                    {
                        Ok(s) => s,
                        Err(e) => {
                            tracing::error!(error = %e, "cannot listen for SIGTERM");
                            let _ = ctrl_c.await;
                            this.fire();
                            return;
                        }
                    };
                tokio::select! {
                    _ = ctrl_c => tracing::info!("interrupted; shutting down"),
                    _ = term.recv() => tracing::info!("SIGTERM; shutting down"),
                }
            }
            #[cfg(not(unix))]
            {
                let _ = ctrl_c.await;
            }
            this.fire();
        });
    }
}
