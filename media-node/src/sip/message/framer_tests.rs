use super::*;

const OPTIONS: &[u8] = b"OPTIONS sip:a@b SIP/2.0\r\nVia: SIP/2.0/TCP h;branch=z9hG4bK1\r\nContent-Length: 5\r\n\r\nhello";

#[test]
fn frames_pipelined_messages_and_keepalives() {
    let mut f = StreamFramer::default();
    let mut stream = b"\r\n\r\n".to_vec();
    stream.extend_from_slice(OPTIONS);
    stream.extend_from_slice(b"\r\n");
    stream.extend_from_slice(OPTIONS);
    let frames = f.feed(&stream).0;
    assert_eq!(
        frames,
        vec![
            Frame::Ping,
            Frame::Message(OPTIONS.to_vec()),
            Frame::Message(OPTIONS.to_vec())
        ]
    );
    assert_eq!(f.buffered(), 0);
}

#[test]
fn byte_by_byte_gives_the_same_frames() {
    let mut f = StreamFramer::default();
    let mut frames = Vec::new();
    let mut stream = OPTIONS.to_vec();
    stream.extend_from_slice(b"\r\n\r\n");
    stream.extend_from_slice(OPTIONS);
    for b in &stream {
        frames.extend(f.feed(std::slice::from_ref(b)).0);
    }
    assert_eq!(
        frames,
        vec![
            Frame::Message(OPTIONS.to_vec()),
            Frame::Ping,
            Frame::Message(OPTIONS.to_vec())
        ]
    );
}

#[test]
fn frames_before_an_error_are_still_delivered() {
    let mut f = StreamFramer::default();
    let mut stream = OPTIONS.to_vec();
    stream.extend_from_slice(b"garbage\r\n");
    let (frames, error) = f.feed(&stream);
    assert_eq!(frames, vec![Frame::Message(OPTIONS.to_vec())]);
    assert_eq!(error, Some(FramerError::Garbage("start line is not SIP")));
    let trailing = b"OPTIONS sip:a@b SIP/2.0  \r\n\r\n";
    assert_eq!(
        StreamFramer::default().feed(trailing).0.len(),
        1,
        "trailing SP is for the parser"
    );
}

#[test]
fn missing_content_length_means_no_body() {
    let mut f = StreamFramer::default();
    let msg = b"BYE sip:a@b SIP/2.0\r\nVia: SIP/2.0/TCP h\r\n\r\n";
    assert_eq!(f.feed(msg), (vec![Frame::Message(msg.to_vec())], None));
}

#[test]
fn oversized_bodies_are_skipped_without_buffering() {
    let mut f = StreamFramer::new(1024, 100);
    let head = b"MESSAGE sip:a@b SIP/2.0\r\nl: 1000\r\n\r\n";
    assert_eq!(f.feed(head), (vec![Frame::Oversized(head.to_vec())], None));
    for _ in 0..10 {
        assert_eq!(f.feed(&[b'x'; 100]), (vec![], None));
        assert_eq!(f.buffered(), 0);
    }
    assert_eq!(
        f.feed(OPTIONS),
        (vec![Frame::Message(OPTIONS.to_vec())], None)
    );
}

#[test]
fn garbage_and_bad_lengths_fail_fast() {
    let cases: [(&[u8], FramerError); 5] = [
        (
            b"\x16\x03\x01\x02\x00",
            FramerError::Garbage("start line begins with a non-token byte"),
        ),
        (
            b"GET / HTTP/1.1\r\n",
            FramerError::Garbage("start line is not SIP"),
        ),
        (
            b"INVITE\x00",
            FramerError::Garbage("control byte in start line"),
        ),
        (
            b"OPTIONS sip:a SIP/2.0\r\nl: 1\r\nl: 2\r\n\r\n",
            FramerError::BadContentLength("repeated"),
        ),
        (
            b"OPTIONS sip:a SIP/2.0\r\nContent-Length: -5\r\n\r\n",
            FramerError::BadContentLength("Negative Content-Length"),
        ),
    ];
    for (bytes, expected) in cases {
        let mut f = StreamFramer::default();
        assert_eq!(f.feed(bytes), (vec![], Some(expected)), "{bytes:?}");
        assert_eq!(f.feed(OPTIONS), (vec![], Some(FramerError::Failed)));
    }
}

#[test]
fn an_endless_header_section_is_bounded() {
    let mut f = StreamFramer::new(256, 100);
    assert_eq!(f.feed(b"OPTIONS sip:a@b SIP/2.0\r\n"), (vec![], None));
    let mut result = None;
    for _ in 0..100 {
        result = f.feed(b"X-Filler: aaaaaaaaaaaaaaaaaaaaaaaa\r\n").1;
        if result.is_some() {
            break;
        }
    }
    assert_eq!(result, Some(FramerError::HeaderTooLarge(256)));
    assert!(f.buffered() == 0);
}

#[test]
fn random_streams_never_panic_or_grow_unbounded() {
    let mut rng = fastrand::Rng::with_seed(11);
    for _ in 0..2_000 {
        let mut f = StreamFramer::new(512, 512);
        for _ in 0..20 {
            let mut chunk = OPTIONS.to_vec();
            let cut = rng.usize(0..chunk.len());
            chunk.truncate(cut);
            for _ in 0..rng.usize(0..4) {
                let at = rng.usize(0..=chunk.len());
                chunk.insert(at, rng.u8(..));
            }
            if f.feed(&chunk).1.is_some() {
                break;
            }
            assert!(f.buffered() <= 512 + 512 + 4 + OPTIONS.len() + 4);
        }
    }
}
