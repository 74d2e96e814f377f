//! The client's log: the library's `tracing` events on stderr, worded as tufa's other messages
//! (`Warning: published, but could not refresh the local cache (gun=…): …`).
//!
//! `TUFA_LOG` filters as tufad's does (`debug`, `tufa_client=trace`); the default is warnings
//! and errors. The crates that carry the agent channel (where a PIN travels to the agent) and
//! HTTP stay at warnings whatever `TUFA_LOG` asks: their debug output is about frames and
//! connections, not tufa's to show. tufa's own events carry key IDs, GUNs and errors, never a
//! PIN, passphrase or key.

use std::fmt::{self, Write as _};

use tracing::field::{Field, Visit};
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields};
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::EnvFilter;

/// The variable that filters the log.
pub const LOG_ENV: &str = "TUFA_LOG";

/// Crates kept at warnings: the gRPC and HTTP transports.
const QUIET: [&str; 6] = ["h2", "hyper", "hyper_util", "reqwest", "tonic", "tower"];

/// Installs the subscriber (once; a second call does nothing).
pub fn init() {
    let mut filter = EnvFilter::builder()
        .with_default_directive(tracing::level_filters::LevelFilter::WARN.into())
        .with_env_var(LOG_ENV)
        .from_env_lossy();
    for target in QUIET {
        if let Ok(directive) = format!("{target}=warn").parse() {
            filter = filter.add_directive(directive);
        }
    }
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .event_format(Plain)
        .try_init();
}

/// `Level: message (field=value, ...): error`, one line per event.
struct Plain;

impl<S, N> FormatEvent<S, N> for Plain
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        _ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        writer.write_str(&line(event))?;
        writer.write_char('\n')
    }
}

/// The event as one line.
fn line(event: &Event<'_>) -> String {
    let meta = event.metadata();
    let mut fields = Fields::default();
    event.record(&mut fields);
    let mut out = match *meta.level() {
        Level::ERROR => "Error".to_owned(),
        Level::WARN => "Warning".to_owned(),
        Level::INFO => "Info".to_owned(),
        // Debugging output says where it comes from.
        level => format!("{} [{}]", level.as_str().to_lowercase(), meta.target()),
    };
    let _ = write!(out, ": {}", fields.message);
    if !fields.others.is_empty() {
        let _ = write!(out, " ({})", fields.others.join(", "));
    }
    if let Some(error) = fields.error {
        let _ = write!(out, ": {error}");
    }
    out
}

/// An event's fields: its message, its `error`, and the rest as `name=value`.
#[derive(Default)]
struct Fields {
    message: String,
    error: Option<String>,
    others: Vec<String>,
}

impl Visit for Fields {
    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        match field.name() {
            "message" => self.message = format!("{value:?}"),
            "error" => self.error = Some(format!("{value:?}")),
            name => self.others.push(format!("{name}={value:?}")),
        }
    }

    fn record_str(&mut self, field: &Field, value: &str) {
        match field.name() {
            "message" => self.message = value.to_owned(),
            "error" => self.error = Some(value.to_owned()),
            name => self.others.push(format!("{name}={value}")),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use tracing_subscriber::layer::{Context, SubscriberExt as _};
    use tracing_subscriber::Layer;

    use super::*;

    /// Collects the lines `Plain` would write.
    struct Lines(Arc<Mutex<Vec<String>>>);

    impl<S: Subscriber> Layer<S> for Lines {
        fn on_event(&self, event: &Event<'_>, _ctx: Context<'_, S>) {
            self.0.lock().unwrap().push(line(event));
        }
    }

    #[test]
    fn events_read_as_tufa_messages() {
        let lines = Arc::new(Mutex::new(Vec::new()));
        let subscriber = tracing_subscriber::registry().with(Lines(lines.clone()));
        tracing::subscriber::with_default(subscriber, || {
            let gun = "example.com/app";
            let error = "the server is down";
            tracing::warn!(gun = %gun, error = %error, "published, but could not refresh the local cache");
            tracing::warn!("credential helper failed; trying config.json");
        });
        let lines = lines.lock().unwrap();
        assert_eq!(
            lines[0],
            "Warning: published, but could not refresh the local cache (gun=example.com/app): \
             the server is down"
        );
        assert_eq!(
            lines[1],
            "Warning: credential helper failed; trying config.json"
        );
    }
}
