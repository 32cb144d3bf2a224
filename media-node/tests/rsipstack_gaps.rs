//! What `rsipstack` 0.7.14's parser gets wrong on its own, pinned so that an upgrade that
//! changes it is noticed (then our wrapper may be simplified). Each case says which check
//! of `sip::message` covers it; `torture.rs` shows the covered behaviour end to end.

#![allow(clippy::unwrap_used)] // tests: a failure stops the test with the error

use std::path::Path;

use rsipstack::sip::{HasHeaders, HeadersExt, SipMessage, ToTypedHeader, Uri};

fn fixture(name: &str) -> Vec<u8> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/rfc4475")
        .join(format!("{name}.dat"));
    std::fs::read(path).unwrap()
}

fn body_len(m: &SipMessage) -> usize {
    match m {
        SipMessage::Request(r) => r.body.len(),
        SipMessage::Response(r) => r.body.len(),
    }
}

#[test]
fn it_rejects_every_extension_method() {
    // Covered: policy answers 501 (405 for known methods) from our own reading.
    for name in ["intmeth", "esc02", "mismatch02"] {
        assert!(
            SipMessage::try_from(fixture(name).as_slice()).is_err(),
            "{name}"
        );
    }
}

#[test]
fn it_accepts_bad_framing() {
    // Covered: checks::body_length (negative, repeated, larger than the datagram).
    let clerr = SipMessage::try_from(fixture("clerr").as_slice()).unwrap();
    assert_eq!(
        body_len(&clerr),
        154,
        "Content-Length 9999, body silently truncated"
    );
    let ncl = SipMessage::try_from(fixture("ncl").as_slice()).unwrap();
    assert_eq!(body_len(&ncl), 0, "Content-Length -999 read as 0");
    let mcl = SipMessage::try_from(fixture("mcl01").as_slice()).unwrap();
    assert_eq!(body_len(&mcl), 5, "the last of two Content-Lengths wins");
    // Covered: our body is authoritative (RFC 3261 §18.3: UDP body runs to the datagram end).
    let inv2543 = SipMessage::try_from(fixture("inv2543").as_slice()).unwrap();
    assert_eq!(
        body_len(&inv2543),
        0,
        "no Content-Length: the UDP body is dropped"
    );
}

#[test]
fn it_accepts_what_the_grammar_forbids() {
    // Covered: grammar::{request_line, uri, name_addr, via}, checks::single, checks::cseq.
    for name in [
        "ltgtruri",
        "trws",
        "quotbal",
        "badaspec",
        "baddn",
        "badinv01",
        "multi01",
        "mismatch01",
        "scalar02",
        "escruri",
        "regbadct",
        "insuf",
        "badvers",
        "badbranch",
    ] {
        assert!(
            SipMessage::try_from(fixture(name).as_slice()).is_ok(),
            "{name}"
        );
    }
    let v6 = "REGISTER sip:2001:db8::10 SIP/2.0\r\nVia: SIP/2.0/UDP h;branch=z9hG4bK1\r\n\r\n";
    assert!(SipMessage::try_from(v6).is_ok(), "unbracketed IPv6 host");
    let big = "OPTIONS sip:a@b SIP/2.0\r\nVia: SIP/2.0/UDP h;branch=z9hG4bK1\r\nCSeq: 3000000000 OPTIONS\r\n\r\n";
    let m = SipMessage::try_from(big).unwrap();
    assert_eq!(
        m.cseq_header().unwrap().typed().unwrap().seq,
        3_000_000_000,
        "CSeq ≥ 2^31"
    );
    let code = SipMessage::try_from("SIP/2.0 999 Odd\r\nVia: SIP/2.0/UDP h\r\n\r\n");
    assert!(code.is_ok(), "status code 999");
}

#[test]
fn it_reads_methods_case_insensitively() {
    // Covered: our method comparison is exact (RFC 3261 §7.1); `invite` gets 501.
    let m = SipMessage::try_from("invite sip:a@b SIP/2.0\r\nVia: SIP/2.0/UDP h\r\n\r\n").unwrap();
    assert!(matches!(m, SipMessage::Request(r) if r.method == rsipstack::sip::Method::Invite));
}

#[test]
fn it_stops_reading_headers_at_a_non_utf8_line() {
    // Covered: raw::scan reports the line; the request gets 400.
    let bytes =
        b"OPTIONS sip:a@b SIP/2.0\r\nVia: SIP/2.0/UDP h\r\nX: \xff\r\nCall-ID: lost\r\n\r\n";
    let m = SipMessage::try_from(&bytes[..]).unwrap();
    assert!(
        m.call_id_header().is_err(),
        "Call-ID after the bad line is gone"
    );
    assert_eq!(m.headers().iter().count(), 1);
}

#[test]
fn it_rejects_a_valid_uri_with_an_unknown_transport() {
    // Covered: answered 400 "Unparseable Request" (the grammar allows other-transport).
    let m = "OPTIONS sip:a@b;transport=foo SIP/2.0\r\nVia: SIP/2.0/UDP h\r\n\r\n";
    assert!(SipMessage::try_from(m).is_err());
}

#[test]
fn its_uri_output_double_encodes_escapes() {
    // Covered: dialog::uri_for_request decodes user escapes before handing a Uri over.
    let uri: Uri = "sip:cal%6Cer@host5.example.net".try_into().unwrap();
    assert_eq!(uri.to_string(), "sip:cal%256Cer@host5.example.net");
}

#[test]
fn its_responses_lose_custom_reason_phrases() {
    // Covered: message::status uses StatusCode::Other for a custom phrase.
    let r = rsipstack::sip::Response {
        status_code: rsipstack::sip::StatusCode::BadRequest,
        wire_reason: Some("Missing Call-ID Header".into()),
        ..Default::default()
    };
    assert!(r.to_bytes().starts_with(b"SIP/2.0 400 Bad Request\r\n"));
}
