//! Joining the caller's trace: media nodes send the call's trace context as W3C
//! `traceparent` gRPC metadata, and the router's span for the RPC (`router.plan`, …) becomes
//! its child, so one call is one trace across media node, router and reporter.
//!
//! The process-wide propagator decides the format (`dialtone::telemetry::init` installs the
//! W3C one when OTLP export is on). Without metadata, or untraced, the span keeps its own
//! parent and nothing changes.

use opentelemetry::propagation::Extractor;
use opentelemetry::trace::TraceContextExt as _;
use tonic::metadata::{KeyRef, MetadataMap};
use tracing_opentelemetry::OpenTelemetrySpanExt as _;

/// Reads propagation fields from gRPC metadata.
struct MetadataExtractor<'a>(&'a MetadataMap);

impl Extractor for MetadataExtractor<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).and_then(|v| v.to_str().ok())
    }

    fn keys(&self) -> Vec<&str> {
        self.0
            .keys()
            .map(|k| match k {
                KeyRef::Ascii(k) => k.as_str(),
                KeyRef::Binary(k) => k.as_str(),
            })
            .collect()
    }
}

/// `span`, made a child of the trace context in `metadata` when there is a valid one. Call it
/// before the span is first entered: an OpenTelemetry span's parent is fixed once it starts.
pub(super) fn follow(metadata: &MetadataMap, span: tracing::Span) -> tracing::Span {
    let cx =
        opentelemetry::global::get_text_map_propagator(|p| p.extract(&MetadataExtractor(metadata)));
    if cx.span().span_context().is_valid()
        && let Err(e) = span.set_parent(cx)
    {
        // Only possible for a span already started or without the layer: no trace to join.
        tracing::debug!(error = %e, "trace context not applied");
    }
    span
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metadata_keys_and_values_are_read() {
        let mut md = MetadataMap::new();
        md.insert(
            "traceparent",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
                .parse()
                .expect("ascii"),
        );
        let ex = MetadataExtractor(&md);
        assert_eq!(
            ex.get("traceparent"),
            Some("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01")
        );
        assert_eq!(ex.keys(), vec!["traceparent"]);
        assert_eq!(ex.get("tracestate"), None);
    }
}
