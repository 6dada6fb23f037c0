//! Portal lookups, batched: the requests waiting at one moment are answered by one
//! query on one connection, which a busy loader keeps until the queue has been empty for
//! a moment.
//!
//! Why not one pooled query per request: sqlx pings a connection when it is taken from
//! the pool and again when it goes back, so each request cost PostgreSQL three round
//! trips for one statement. Here a loader pays those pings once per busy spell and one
//! query per batch, however many requests are in it. With no queue there is no waiting:
//! a lone request is a batch of one, sent at once.
//!
//! Every batch runs under `DATABASE_QUERY_TIMEOUT_MS`: PostgreSQL cancels a statement
//! that outlasts it (a lock held by a migration, say), and a connection whose database
//! stops answering altogether is dropped rather than returned to the pool. Either way
//! each waiting request gets a 503 in bounded time, never a hang, and no pool slot or
//! server backend is left behind.

use std::{sync::Arc, time::Duration};

use sqlx::{Connection, PgConnection, PgPool};
use thread_local::ThreadLocal;
use tokio::sync::{Mutex, mpsc, oneshot};
use uuid::Uuid;

use crate::db::{
    DbError,
    portal::{PortalLookup, PortalTarget, find_portal_targets, find_portal_targets_unprepared},
};

/// The most requests one query answers; more wait for the next batch.
const MAX_BATCH: usize = 128;

/// How long a loader keeps its connection once the queue is empty, for the next
/// request. Taking a connection from the pool and giving it back cost a ping each
/// (sqlx), which under a steady stream of requests was half of all round trips.
const LINGER: Duration = Duration::from_millis(50);

/// How long after the statement timeout a silent database is given up on.
const CANCEL_GRACE: Duration = Duration::from_millis(500);

/// Why a lookup got no answer.
#[derive(Debug, thiserror::Error)]
pub enum LookupError {
    #[error(transparent)]
    Database(#[from] DbError),
    #[error("the lookup loaders have stopped")]
    Stopped,
}

type Answer = Result<Option<PortalTarget>, LookupError>;

struct Waiting {
    lookup: PortalLookup,
    answer: oneshot::Sender<Answer>,
}

/// The queues of lookups, and the loaders answering each. Cheap to clone; the loaders
/// stop when the last clone is dropped.
///
/// A queue per thread, up to one per lookup connection: a lookup answered on another
/// thread costs a wake-up of that thread and another of the requester's, so with one
/// runtime per thread (`server::serve_on_threads`) a request, its lookup and the
/// database's answer stay on one thread. A queue's loaders are started by its thread's
/// first lookup, on that thread's runtime. With more threads than lookup connections,
/// the threads beyond them share the queues in turn, so the connections held never
/// exceed `DATABASE_LOOKUP_CONNECTIONS`.
#[derive(Clone)]
pub struct Lookups {
    shared: Arc<Shared>,
}

struct Shared {
    /// Each thread's queue, found on its first lookup.
    of_thread: ThreadLocal<mpsc::Sender<Waiting>>,
    /// Every queue, in the order threads started them.
    queues: std::sync::Mutex<Vec<mpsc::Sender<Waiting>>>,
    /// How many queues there may be, and loaders each.
    most_queues: usize,
    loaders_per_queue: usize,
    pool: PgPool,
    query_timeout: Duration,
    capacity: usize,
    pgbouncer: bool,
}

impl Lookups {
    /// `loaders` tasks in all, each holding at most one of `pool`'s connections, shared
    /// out among up to `threads` queues; at most `capacity` lookups waiting per queue.
    /// With `pgbouncer`, each batch is a transaction of its own (see `find`).
    pub fn new(
        pool: PgPool,
        loaders: usize,
        threads: usize,
        query_timeout: Duration,
        capacity: usize,
        pgbouncer: bool,
    ) -> Self {
        let loaders = loaders.max(1);
        let most_queues = threads.clamp(1, loaders);
        let shared = Shared {
            of_thread: ThreadLocal::new(),
            queues: std::sync::Mutex::default(),
            most_queues,
            loaders_per_queue: loaders / most_queues,
            pool,
            query_timeout,
            capacity: capacity.max(1),
            pgbouncer,
        };
        Self { shared: Arc::new(shared) }
    }

    /// The project's key and settings and the user's customer for the mode; `None` when
    /// the project does not exist.
    pub async fn find(&self, project_id: Uuid, user_id: &str, livemode: bool) -> Answer {
        let (answer, answered) = oneshot::channel();
        let lookup = PortalLookup { project_id, user_id: user_id.to_owned(), livemode };
        let queue = self.shared.of_thread.get_or(|| self.shared.queue_for_new_thread()).clone();
        queue.send(Waiting { lookup, answer }).await.map_err(|_| LookupError::Stopped)?;
        answered.await.map_err(|_| LookupError::Stopped)?
    }
}

impl Shared {
    /// A new queue with its loaders on this thread's runtime while there may be more
    /// queues; after that, the existing queues in turn.
    fn queue_for_new_thread(&self) -> mpsc::Sender<Waiting> {
        let mut queues = self.queues.lock().unwrap_or_else(|e| e.into_inner());
        if queues.len() < self.most_queues {
            let (queue, waiting) = mpsc::channel(self.capacity);
            let waiting = Arc::new(Mutex::new(waiting));
            for _ in 0..self.loaders_per_queue {
                tokio::spawn(load(self.pool.clone(), waiting.clone(), self.query_timeout, self.pgbouncer));
            }
            queues.push(queue.clone());
            return queue;
        }
        let turn = self.of_thread.iter().count() % queues.len();
        queues[turn].clone()
    }
}

/// One loader: waits for work with no connection, then answers batches on one
/// connection for as long as requests keep coming, with pauses of at most `LINGER`.
async fn load(
    pool: PgPool,
    waiting: Arc<Mutex<mpsc::Receiver<Waiting>>>,
    query_timeout: Duration,
    pgbouncer: bool,
) {
    // PostgreSQL cancels the statement at `query_timeout` (see `db::pool`); this later
    // deadline is for a database that does not answer at all.
    let deadline = query_timeout + CANCEL_GRACE;
    while let Some(mut batch) = next_batch(&waiting).await {
        let mut connection = match pool.acquire().await {
            Ok(connection) => connection,
            Err(e) => {
                answer_all_with(batch, &e);
                continue;
            }
        };
        loop {
            let lookups: Vec<PortalLookup> = batch.iter().map(|w| w.lookup.clone()).collect();
            let found =
                tokio::time::timeout(deadline, find(&mut connection, &lookups, query_timeout, pgbouncer))
                    .await;
            match found {
                Ok(Ok(targets)) => {
                    for (waiting, target) in batch.into_iter().zip(targets) {
                        // The requester may have gone (client hung up); nothing to do then.
                        let _ = waiting.answer.send(Ok(target));
                    }
                }
                Ok(Err(e)) => {
                    answer_all_with(batch, &e);
                    // The server refusing or cancelling a statement leaves the connection
                    // sound; a broken socket does not.
                    if !matches!(e, sqlx::Error::Database(_)) {
                        drop(connection.detach());
                    }
                    break;
                }
                Err(_) => {
                    let e = sqlx::Error::Io(std::io::Error::new(
                        std::io::ErrorKind::TimedOut,
                        format!("lookup query did not finish within {deadline:?}"),
                    ));
                    answer_all_with(batch, &e);
                    // Mid-query, the connection's state is unknown. Returned to the pool,
                    // it would be pinged, and a stalled socket would hold its slot for
                    // good: drop the socket and free the slot now instead.
                    drop(connection.detach());
                    break;
                }
            }
            batch = match ready_batch(&waiting) {
                Some(next) => next,
                None => match tokio::time::timeout(LINGER, next_batch(&waiting)).await {
                    Ok(Some(next)) => next,
                    // Every `Lookups` is gone: the service is stopping.
                    Ok(None) => return,
                    // Quiet for a while: the connection goes back to the pool.
                    Err(_) => break,
                },
            };
        }
    }
}

/// One batch. Through PgBouncer in transaction mode it runs in a transaction of its own:
/// the unnamed statement's parse and execution then reach the same server connection,
/// and the statement timeout, which PgBouncer would refuse as a startup option, is set
/// for that transaction (one round trip with `BEGIN`).
async fn find(
    connection: &mut PgConnection,
    lookups: &[PortalLookup],
    query_timeout: Duration,
    pgbouncer: bool,
) -> sqlx::Result<Vec<Option<PortalTarget>>> {
    if !pgbouncer {
        return find_portal_targets(connection, lookups).await;
    }
    let begin = format!("BEGIN; SET LOCAL statement_timeout = {}", query_timeout.as_millis());
    let mut transaction = connection.begin_with(begin).await?;
    let found = find_portal_targets_unprepared(&mut *transaction, lookups).await?;
    transaction.commit().await?;
    Ok(found)
}

/// Waits for a first request, then takes whatever else is already queued.
async fn next_batch(waiting: &Mutex<mpsc::Receiver<Waiting>>) -> Option<Vec<Waiting>> {
    let mut queue = waiting.lock().await;
    let first = queue.recv().await?;
    let mut batch = vec![first];
    fill(&mut queue, &mut batch);
    Some(batch)
}

/// The requests queued right now, if any and if no idle loader is already waiting for
/// them (that loader holding the queue means it is empty).
fn ready_batch(waiting: &Mutex<mpsc::Receiver<Waiting>>) -> Option<Vec<Waiting>> {
    let mut queue = waiting.try_lock().ok()?;
    let mut batch = Vec::new();
    fill(&mut queue, &mut batch);
    (!batch.is_empty()).then_some(batch)
}

fn fill(queue: &mut mpsc::Receiver<Waiting>, batch: &mut Vec<Waiting>) {
    while batch.len() < MAX_BATCH {
        match queue.try_recv() {
            Ok(waiting) => batch.push(waiting),
            Err(_) => break,
        }
    }
}

/// Every request of a failed batch gets the same answer; the cause is logged once per
/// request, where the answer is turned into a response.
fn answer_all_with(batch: Vec<Waiting>, e: &sqlx::Error) {
    let error = DbError::from(e);
    for waiting in batch {
        let _ = waiting.answer.send(Err(error.clone().into()));
    }
}
