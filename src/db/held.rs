//! Connections kept out of the pool while work keeps coming, at most `size` at once.
//!
//! Why: sqlx pings a connection when it is taken from the pool and again when it goes
//! back, so one statement cost three round trips to PostgreSQL and three wake-ups of its
//! backend. A connection held here is handed from one statement to the next with no
//! ping, and goes back to the pool once it has been idle for `LINGER`. `size` also
//! bounds how many of these statements PostgreSQL runs at once: past about two per core,
//! more only queue inside PostgreSQL, where every one of them waits longer
//! (bench/RESULTS-webhooks.md).

use std::{
    ops::{Deref, DerefMut},
    sync::{Arc, Mutex, Weak},
    time::{Duration, Instant},
};

use sqlx::{PgConnection, PgPool, Postgres, pool::PoolConnection};
use tokio::sync::{Semaphore, SemaphorePermit};

/// How long an unused connection stays held before it goes back to the pool.
const LINGER: Duration = Duration::from_millis(200);

pub struct HeldConnections {
    pool: PgPool,
    slots: Semaphore,
    idle: Mutex<Vec<(PoolConnection<Postgres>, Instant)>>,
}

impl HeldConnections {
    /// Must be called on a runtime: a task gives idle connections back to the pool, and
    /// ends when the last `Arc` is dropped.
    pub fn new(pool: PgPool, size: usize) -> Arc<Self> {
        let held = Arc::new(Self { pool, slots: Semaphore::new(size.max(1)), idle: Mutex::default() });
        tokio::spawn(release_idle(Arc::downgrade(&held)));
        held
    }

    /// A connection for one statement or transaction: a held one if any is idle, else
    /// one from the pool (waiting, as the pool does, at most its acquire timeout).
    pub async fn acquire(&self) -> sqlx::Result<Held<'_>> {
        let permit = self.slots.acquire().await.map_err(|_| sqlx::Error::PoolClosed)?;
        let idle = self.idle.lock().unwrap_or_else(|e| e.into_inner()).pop();
        let connection = match idle {
            Some((connection, _)) => connection,
            None => self.pool.acquire().await?,
        };
        Ok(Held { owner: self, connection: Some(connection), sound: false, _permit: permit })
    }
}

/// Gives back connections idle for longer than `LINGER`, newest kept.
async fn release_idle(held: Weak<HeldConnections>) {
    loop {
        tokio::time::sleep(LINGER).await;
        let Some(held) = held.upgrade() else { return };
        let stale: Vec<_> = {
            let mut idle = held.idle.lock().unwrap_or_else(|e| e.into_inner());
            let keep = idle.iter().position(|(_, since)| since.elapsed() < LINGER).unwrap_or(idle.len());
            idle.drain(..keep).collect()
        };
        // Dropped outside the lock: each goes back to the pool.
        drop(stale);
    }
}

/// One connection on loan. Unless the caller says it is [`sound`](Held::sound) (the
/// statement finished, with an answer or a database error), it is closed rather than
/// reused when dropped: a statement cut off midway leaves it in an unknown state.
pub struct Held<'a> {
    owner: &'a HeldConnections,
    connection: Option<PoolConnection<Postgres>>,
    sound: bool,
    _permit: SemaphorePermit<'a>,
}

impl Held<'_> {
    pub fn sound(&mut self) {
        self.sound = true;
    }
}

impl Deref for Held<'_> {
    type Target = PgConnection;

    fn deref(&self) -> &PgConnection {
        self.connection.as_ref().expect("held until dropped")
    }
}

impl DerefMut for Held<'_> {
    fn deref_mut(&mut self) -> &mut PgConnection {
        self.sound = false;
        self.connection.as_mut().expect("held until dropped")
    }
}

impl Drop for Held<'_> {
    fn drop(&mut self) {
        let Some(connection) = self.connection.take() else { return };
        if self.sound {
            // Pushed last, so the idle list stays ordered from oldest to newest.
            self.owner.idle.lock().unwrap_or_else(|e| e.into_inner()).push((connection, Instant::now()));
        } else {
            // Closes the socket and frees the pool's slot at once, with no ping.
            drop(connection.detach());
        }
    }
}
