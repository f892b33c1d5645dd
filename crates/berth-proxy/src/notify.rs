//! Change notification for target statuses: a watch channel carrying a counter.

use std::sync::Arc;

use tokio::sync::watch;

#[derive(Clone, Debug)]
pub(crate) struct Notifier {
    tx: Arc<watch::Sender<u64>>,
}

impl Notifier {
    pub(crate) fn new() -> Notifier {
        Notifier {
            tx: Arc::new(watch::Sender::new(0)),
        }
    }

    pub(crate) fn notify(&self) {
        self.tx.send_modify(|v| *v = v.wrapping_add(1));
    }

    pub(crate) fn subscribe(&self) -> watch::Receiver<u64> {
        self.tx.subscribe()
    }
}
