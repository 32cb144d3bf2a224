//! One trace per call: the call's `sip.invite` span is the root; its context travels as a W3C
//! `traceparent` to the router (gRPC metadata on every Router RPC of the call) and to the
//! reporter (`CallStarted.traceparent`, and the trace id on every call event).
//!
//! The process-wide propagator decides the format: `dialtone::telemetry::init` installs the
//! W3C trace-context propagator when OTLP export is on. Without it (or without the
//! OpenTelemetry layer) every span context is invalid and nothing is injected, so an
//! untraced node sends exactly what it sent before.

use std::collections::HashMap;

use opentelemetry::Context;
use opentelemetry::propagation::Injector;
use opentelemetry::trace::TraceContextExt as _;
use tonic::metadata::{MetadataKey, MetadataMap, MetadataValue};
use tracing_opentelemetry::OpenTelemetrySpanExt as _;

/// Writes propagation fields into gRPC metadata.
struct MetadataInjector<'a>(&'a mut MetadataMap);

impl Injector for MetadataInjector<'_> {
    fn set(&mut self, key: &str, value: String) {
        // The W3C keys and values are plain ASCII; anything else is skipped rather than
        // failing the RPC over a header.
        if let (Ok(key), Ok(value)) = (
            MetadataKey::from_bytes(key.as_bytes()),
            MetadataValue::try_from(value.as_str()),
        ) {
            self.0.insert(key, value);
        }
    }
}

/// The OpenTelemetry context of the current `tracing` span (invalid when untraced).
pub(super) fn current() -> Context {
    tracing::Span::current().context()
}

/// A request carrying `cx` as `traceparent` (and `tracestate`) metadata.
pub(super) fn request<T>(cx: &Context, message: T) -> tonic::Request<T> {
    let mut request = tonic::Request::new(message);
    if cx.span().span_context().is_valid() {
        opentelemetry::global::get_text_map_propagator(|p| {
            p.inject_context(cx, &mut MetadataInjector(request.metadata_mut()));
        });
    }
    request
}

/// The W3C `traceparent` of the current span; empty when untraced.
pub(super) fn current_traceparent() -> String {
    let cx = current();
    if !cx.span().span_context().is_valid() {
        return String::new();
    }
    let mut fields = HashMap::new();
    opentelemetry::global::get_text_map_propagator(|p| p.inject_context(&cx, &mut fields));
    fields.remove("traceparent").unwrap_or_default()
}

/// The trace id (32 lowercase hex digits) of the current span, when it is traced.
pub(super) fn current_trace_id() -> Option<String> {
    let cx = current();
    let span = cx.span();
    let sc = span.span_context();
    sc.is_valid().then(|| sc.trace_id().to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn untraced_spans_inject_nothing() {
        // No OpenTelemetry layer in unit tests: every context is invalid.
        let span = tracing::info_span!("sip.invite");
        let _g = span.enter();
        assert_eq!(current_traceparent(), "");
        assert_eq!(current_trace_id(), None);
        let req = request(&current(), ());
        assert!(req.metadata().get("traceparent").is_none());
    }
}
