//! What a report reads: which run, which time window, which names.
//!
//! A [`Query`] is what a user asks for; [`select`] resolves it against a
//! file into a [`Selection`]: the run id (the latest when none is given,
//! else checked), the time window in absolute nanoseconds, and the
//! recorder's counters for the run.

use crate::error::{Error, Result};
use crate::store::{RunInfo, SpanQuery, Store};

/// One end of a time window.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TimeBound {
    /// Nanoseconds since the UNIX epoch.
    UnixNs(i64),
    /// Nanoseconds after the run's first span started.
    FromRunStart(i64),
}

/// Which clock a report's durations are on.
///
/// - **wall**: from start to end (the default).
/// - **busy**: the time the span was running on a thread: for a tracing span
///   (FerretLayer) the time it was entered, for an `in_span` future (and
///   `#[ferret::measure] async fn`) the time spent in its polls, for a sync
///   span its wall time. A span's *self* busy time is its busy time minus
///   the busy time of the spans that ran nested inside it on the same thread
///   (the recorder measures it as `self_busy_ns`). ferret-io files record no
///   busy time: busy = wall there.
///
/// The scan driver applies the clock (see [`scan`](super::scan::scan)):
/// every fold sees the chosen durations and self times.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Clock {
    /// Wall-clock durations.
    #[default]
    Wall,
    /// Busy (on-thread) time.
    Busy,
}

impl Clock {
    /// The clock's name, as the CLI spells it.
    pub fn name(self) -> &'static str {
        match self {
            Clock::Wall => "wall",
            Clock::Busy => "busy",
        }
    }
}

/// What a report reads.
#[derive(Debug, Clone, Default)]
pub struct Query {
    /// The run id; `None` picks the latest run.
    pub run: Option<String>,
    /// Only spans starting at or after this time.
    pub since: Option<TimeBound>,
    /// Only spans starting before this time.
    pub until: Option<TimeBound>,
    /// Globs (`db_*`): reports that list names keep only the matching ones.
    /// Every span is still read (self time and trees need them all).
    pub names: Vec<String>,
    /// The clock durations and self times are on.
    pub clock: Clock,
}

impl Query {
    /// The latest run, every span.
    pub fn latest() -> Query {
        Query::default()
    }

    /// One run by id, every span.
    pub fn run(id: impl Into<String>) -> Query {
        Query {
            run: Some(id.into()),
            ..Query::default()
        }
    }

    /// True when the query restricts spans by time.
    pub fn has_window(&self) -> bool {
        self.since.is_some() || self.until.is_some()
    }
}

/// A [`Query`] resolved against one file.
#[derive(Debug, Clone)]
pub struct Selection {
    /// The run read.
    pub run: String,
    /// True when the run was picked as the latest (no run was asked for).
    pub latest: bool,
    /// The time window, in absolute nanoseconds.
    pub window: SpanQuery,
    /// The recorder's counters for the run (native files; `None` for
    /// ferret-io files, which keep none).
    pub counters: Option<RunInfo>,
    /// The name globs, compiled (`None`: every name).
    pub names: Option<NameFilter>,
    /// The clock durations and self times are on.
    pub clock: Clock,
}

/// Compiled name globs.
#[derive(Debug, Clone)]
pub struct NameFilter(globset::GlobSet);

impl NameFilter {
    /// Compiles globs (`*` matches `/` and `.` too); `None` for no globs.
    pub fn new(globs: &[String]) -> Result<Option<NameFilter>> {
        if globs.is_empty() {
            return Ok(None);
        }
        let mut b = globset::GlobSetBuilder::new();
        for g in globs {
            b.add(
                globset::GlobBuilder::new(g)
                    .literal_separator(false)
                    .build()
                    .map_err(|e| Error::Invalid(format!("bad --name glob '{g}': {e}")))?,
            );
        }
        let set = b.build().map_err(|e| Error::Invalid(e.to_string()))?;
        Ok(Some(NameFilter(set)))
    }

    /// True when `name` matches one of the globs.
    pub fn is_match(&self, name: &str) -> bool {
        self.0.is_match(name)
    }
}

/// Resolves `q` against `store`: picks or checks the run, turns relative
/// times into absolute ones, reads the run's counters.
pub fn select(store: &Store, q: &Query) -> Result<Selection> {
    let (run, latest) = match &q.run {
        Some(r) => {
            store.check_run(r)?;
            (r.clone(), false)
        }
        None => (store.latest_run()?, true),
    };
    let counters = store.run_counters(&run)?;
    let relative = [q.since, q.until]
        .iter()
        .any(|b| matches!(b, Some(TimeBound::FromRunStart(_))));
    let start = if !relative {
        0
    } else if let Some(c) = &counters {
        c.first_start_ns
    } else {
        store
            .runs()?
            .into_iter()
            .find(|r| r.run_id == run)
            .map_or(0, |r| r.first_start_ns)
    };
    let abs = |b: Option<TimeBound>| {
        b.map(|b| match b {
            TimeBound::UnixNs(t) => t,
            TimeBound::FromRunStart(d) => start.saturating_add(d),
        })
    };
    Ok(Selection {
        run,
        latest,
        window: SpanQuery {
            with_tags: false,
            since_ns: abs(q.since),
            until_ns: abs(q.until),
        },
        counters,
        names: NameFilter::new(&q.names)?,
        clock: q.clock,
    })
}
