//! Thread-per-core serving: every connection lives on one *lane*, a single-threaded tokio
//! runtime on a thread of its own, one lane per core (as nginx's workers). A connection's
//! requests never move between threads, so answering one wakes no other thread; on the
//! work-stealing runtime each request woke a second worker for a task the first could run.
//! A cached listing costs ~10 % less CPU this way (`bench/README.md`).
//!
//! The accept loop stays on the main runtime and hands each connection to the lane with
//! the fewest open connections. A handler's `tokio::spawn` and `spawn_blocking` run on its
//! lane's runtime (each lane has its own blocking pool); the stores' threads and channels
//! work from any runtime.
//!
//! What a lane gives up is stealing: a handler that computes for long without yielding holds
//! up the other connections of its lane. Handlers stream in chunks and do their heavy work
//! (image renders, file I/O, argon2) on the blocking pool; a long listing yields every 1,024
//! entries and is serialised on the blocking pool. Left as is: the emulator's snapshot
//! (its manifest is built in place), an admin's call on a test instance.

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use tokio::runtime::Handle;
use tokio::sync::oneshot;

/// The lanes of one server, until [`Lanes::stop`].
pub struct Lanes {
    lanes: Vec<Lane>,
}

struct Lane {
    handle: Handle,
    /// Connections open on this lane.
    open: Arc<AtomicUsize>,
    /// Dropped to stop the lane: its thread then ends its runtime and exits.
    stop: oneshot::Sender<()>,
    thread: std::thread::JoinHandle<()>,
}

impl Lanes {
    /// One lane per core this process may use.
    pub fn start() -> std::io::Result<Lanes> {
        let n = std::thread::available_parallelism().map_or(1, |n| n.get());
        let lanes = (0..n).map(Lane::start).collect::<std::io::Result<_>>()?;
        Ok(Lanes { lanes })
    }

    /// Stops every lane and waits for their threads: connections still open on a lane are
    /// dropped (the accept loop stops the lanes after its drain), and each lane's runtime
    /// waits for its blocking tasks (a file being made finishes or cleans up), as the main
    /// runtime does when the process ends.
    pub async fn stop(self) {
        let threads: Vec<_> = self.lanes.into_iter().map(|l| (l.stop, l.thread)).collect();
        let _ = tokio::task::spawn_blocking(move || {
            for (stop, thread) in threads {
                drop(stop);
                let _ = thread.join();
            }
        })
        .await;
    }

    /// Runs `connection` on the lane with the fewest open connections.
    pub fn spawn(&self, connection: impl Future<Output = ()> + Send + 'static) {
        let lane = self.lanes.iter().min_by_key(|l| l.open.load(Ordering::Relaxed)).expect("at least one lane");
        let open = lane.open.clone();
        open.fetch_add(1, Ordering::Relaxed);
        let closes = Closes(open);
        lane.handle.spawn(async move {
            let _closes = closes;
            connection.await
        });
    }
}

/// Counts a connection out of its lane however its task ends (done, or dropped unpolled).
struct Closes(Arc<AtomicUsize>);

impl Drop for Closes {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

impl Lane {
    fn start(i: usize) -> std::io::Result<Lane> {
        let (stop, stopped) = oneshot::channel::<()>();
        let (made, handle) = std::sync::mpsc::channel();
        // The runtime is made on its own thread, and dropped there: a runtime must not be
        // dropped on an async thread, as it would be here if the spawn failed after it.
        let thread = std::thread::Builder::new().name(format!("ocloud-lane-{i}")).spawn(move || {
            let rt = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
                Ok(rt) => rt,
                Err(e) => return drop(made.send(Err(e))),
            };
            let _ = made.send(Ok(rt.handle().clone()));
            // Its I/O and timers are driven here, by `block_on`, until the lane is stopped;
            // dropping the runtime then cancels what is left and waits for its blocking tasks.
            let _ = rt.block_on(stopped);
        })?;
        let handle = handle.recv().map_err(std::io::Error::other)??;
        Ok(Lane { handle, open: Arc::new(AtomicUsize::new(0)), stop, thread })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::mpsc;

    fn open(lanes: &Lanes) -> Vec<usize> {
        lanes.lanes.iter().map(|l| l.open.load(Ordering::Relaxed)).collect()
    }

    /// Which lane ran a task: its thread's name.
    fn lane_of(name: String) -> usize {
        name.strip_prefix("ocloud-lane-").expect("a lane's thread").parse().unwrap()
    }

    #[test]
    fn connections_go_to_the_least_busy_lane_and_are_counted_out() {
        let lanes = Lanes::start().unwrap();
        let here = || std::thread::current().name().unwrap_or_default().to_owned();
        // One connection that stays open.
        let (release, wait) = oneshot::channel::<()>();
        let (tx, rx) = mpsc::channel();
        let tx1 = tx.clone();
        lanes.spawn(async move {
            tx1.send(here()).unwrap();
            let _ = wait.await;
            tx1.send(here()).unwrap();
        });
        let first = lane_of(rx.recv().unwrap());
        assert_eq!(open(&lanes).iter().sum::<usize>(), 1);
        assert_eq!(open(&lanes)[first], 1);
        // The next one goes to another lane when there is one.
        lanes.spawn(async move { tx.send(here()).unwrap() });
        let second = lane_of(rx.recv().unwrap());
        assert_eq!(lanes.lanes.len() > 1, second != first);
        // Closed: counted out once its task ends. A probe spawned on the lane afterwards runs
        // only after that task's last poll, which drops its count.
        release.send(()).unwrap();
        assert_eq!(lane_of(rx.recv().unwrap()), first);
        for lane in [first, second] {
            let (tx, rx) = mpsc::channel();
            let count = lanes.lanes[lane].open.clone();
            lanes.lanes[lane].handle.spawn(async move { tx.send(count.load(Ordering::Relaxed)).unwrap() });
            assert_eq!(rx.recv().unwrap(), 0, "lane {lane}");
        }
    }
}
