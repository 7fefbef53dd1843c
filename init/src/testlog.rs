//! For tests: the log messages emitted on the current thread, so that a test
//! can check what an administrator would read on the console; and a lock
//! between the tests that reap any child and those whose children's exit
//! status matters.

use std::fmt::Write as _;
use std::sync::{Arc, Mutex, RwLock, RwLockReadGuard, RwLockWriteGuard};

use tracing::field::{Field, Visit};
use tracing::subscriber::DefaultGuard;
use tracing::{Event, Subscriber};
use tracing_subscriber::layer::{Context, Layer, SubscriberExt};

/// Collects this thread's messages until dropped.
pub struct Captured {
    lines: Arc<Mutex<Vec<String>>>,
    _guard: DefaultGuard,
}

impl Captured {
    /// The messages so far, "warning: " or "error: " in front as on the
    /// console.
    pub fn lines(&self) -> Vec<String> {
        self.lines.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }
}

pub fn capture() -> Captured {
    let lines = Arc::new(Mutex::new(Vec::new()));
    let subscriber = tracing_subscriber::registry().with(Collect(lines.clone()));
    Captured {
        lines,
        _guard: tracing::subscriber::set_default(subscriber),
    }
}

struct Collect(Arc<Mutex<Vec<String>>>);

impl<S: Subscriber> Layer<S> for Collect {
    fn on_event(&self, event: &Event<'_>, _: Context<'_, S>) {
        let mut message = Message::default();
        event.record(&mut message);
        let tag = match *event.metadata().level() {
            tracing::Level::ERROR => "error: ",
            tracing::Level::WARN => "warning: ",
            _ => "",
        };
        self.0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(format!("{tag}{}", message.0));
    }
}

#[derive(Default)]
struct Message(String);

impl Visit for Message {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        if field.name() == "message" {
            let _ = write!(self.0, "{value:?}");
        }
    }
}

/// Between a test that reaps every child (`waitpid(-1)`, as PID 1 does)
/// and the tests that check how their own children exited: all run in one
/// process, and the first would take the others' statuses.
static CHILDREN: RwLock<()> = RwLock::new(());

/// For a test that checks its own children's exit statuses.
pub fn own_children() -> RwLockReadGuard<'static, ()> {
    CHILDREN.read().unwrap_or_else(|e| e.into_inner())
}

/// For a test that reaps any child.
pub fn reaping_any_child() -> RwLockWriteGuard<'static, ()> {
    CHILDREN.write().unwrap_or_else(|e| e.into_inner())
}

/// The bytes of the files directly in `dir` (the log tests' total).
pub fn dir_bytes(dir: &std::path::Path) -> u64 {
    std::fs::read_dir(dir)
        .unwrap()
        .flatten()
        .map(|e| e.metadata().unwrap().len())
        .sum()
}
