use super::*;

#[test]
fn request_lines() {
    assert_eq!(
        request_line("INVITE sip:a@b SIP/2.0"),
        Ok(RequestLine {
            method: "INVITE",
            uri: "sip:a@b"
        })
    );
    assert_eq!(
        request_line("OPTIONS sip:a@b SIP/7.0"),
        Err(LineError::Version)
    );
    for bad in [
        "INVITE  sip:a@b  SIP/2.0",
        "OPTIONS sip:a@b SIP/2.0  ",
        "INVITE sip:a@b; lr SIP/2.0",
        "INVITE sip:a@b SIP/2",
        "INVITE sip:a@b sip/2.0",
        "IN VITE",
        "",
        "INV\u{0}ITE sip:a@b SIP/2.0",
    ] {
        assert!(
            matches!(request_line(bad), Err(LineError::Malformed(_))),
            "{bad:?}"
        );
    }
}

#[test]
fn status_lines() {
    assert_eq!(status_line("SIP/2.0 100 "), Ok(100));
    assert_eq!(status_line("SIP/2.0 100"), Ok(100));
    assert_eq!(status_line("SIP/2.0 200 = 2**3 * 5**2 но"), Ok(200));
    assert!(status_line("SIP/2.0 4294967301 better not break the receiver").is_err());
    assert!(status_line("SIP/2.0 099 Low").is_err());
    assert!(status_line("SIP/2.0 700 High").is_err());
    assert_eq!(status_line("SIP/3.0 200 OK"), Err(LineError::Version));
}

#[test]
fn hosts_and_uris() {
    assert!(host("example.com").is_ok());
    assert!(host("192.0.2.1").is_ok());
    assert!(host("192.0.2.300").is_err());
    assert!(host("[2001:db8::10]").is_ok());
    assert!(host("[2001:db8:::192.0.2.1]").is_err());
    assert!(host("[2001:db8::192.0.2.1]").is_ok());
    assert!(uri("sip:2001:db8::10", false).is_err());
    assert!(uri("sip:[2001:db8::10]:5070", false).is_ok());
    assert!(uri("sip:[2001:db8::10:5070]", false).is_ok());
    assert!(uri("sip:user@example.com?Route=%3Csip:example.com%3E", false).is_err());
    assert!(uri("sip:user@example.com?Route=%3Csip:example.com%3E", true).is_ok());
    assert!(uri("sip:sips%3Auser%40example.com@example.net", false).is_ok());
    assert!(uri("sip:user;par=u%40example.net@example.com", false).is_ok());
    assert!(uri("sip:null-%00-null@example.com", false).is_ok());
    assert!(uri("sip:bad%2@example.com", false).is_err());
    assert!(
        uri(
            "sip:1_unusual.URI~(to-be!sure)&isn't+it$/crazy?,/;;*:&it+has=1,weird!*pas$wo~d_too.(doesn't-it)@example.com",
            false
        )
        .is_ok()
    );
    assert!(uri("<sip:user@example.com>", false).is_err());
    assert!(uri("sip:user@example.com;;lr", false).is_err());
    assert_eq!(
        uri("soap.beep://192.0.2.103:3002", false),
        Ok(UriKind::Other("soap.beep".into()))
    );
    assert_eq!(
        uri("nobodyKnowsThisScheme:totallyopaquecontent", false),
        Ok(UriKind::Other("nobodyknowsthisscheme".into()))
    );
    assert_eq!(uri("tel:+15551234567", false), Ok(UriKind::Tel));
}

#[test]
fn name_addrs() {
    let wsinv_from = "\"J Rosenberg \\\\\\\"\"       <sip:jdrosen@example.com> ; tag = 98asjd8";
    assert_eq!(
        name_addr(wsinv_from).map(|n| n.tag().map(str::to_string)),
        Ok(Some("98asjd8".into()))
    );
    let to = name_addr("sip:vivekg@chair-dnrc.example.com ;   tag    = 1918181833n").unwrap();
    assert_eq!(to.tag(), Some("1918181833n"));
    assert!(!to.bracketed);
    assert!(name_addr("caller<sip:caller@example.com>;tag=323").is_ok());
    assert!(
        name_addr("token1~` token2'+_ token3*%!.- <sip:mundane@example.com>;fromParam''~+*_!.-%=\"работающий\";tag=_token~1'+`*%!-.").is_ok()
    );
    assert!(name_addr("\"BEL:\\\u{7} NUL:\\\u{0} DEL:\\\u{7f}\" <sip:x@example.com>").is_ok());
    assert!(name_addr("\"Mr. J. User <sip:j.user@example.com>").is_err());
    assert!(name_addr("\"Watson, Thomas\" < sip:t.watson@example.org >").is_err());
    assert!(name_addr("Bell, Alexander <sip:a.g.bell@example.com>;tag=43").is_err());
    assert!(name_addr("sip:user@example.com?Route=%3Csip:sip.example.com%3E").is_err());
    assert!(name_addr("<sip:user@example.com?Route=%3Csip:sip.example.com%3E>").is_ok());
    assert!(name_addr("\"Joe\" <sip:joe@example.org>;;;;").is_err());
    let c = name_addr("sip:+19725552222@gw1.example.net;unknownparam").unwrap();
    assert_eq!(c.param("unknownparam"), Some(None));
    assert!(name_addr("isbn:2983792873").is_ok());
    assert!(name_addr("<name:John_Smith>").is_ok());
}

#[test]
fn vias() {
    let v = via("SIP  /   2.0 /UDP 192.0.2.2;branch=390skdjuw").unwrap();
    assert_eq!(v[0].branch(), Some("390skdjuw"));
    assert_eq!(v[0].sent_by(), "192.0.2.2");
    let v = via("SIP  / 2.0  / TCP     spindle.example.com   ; branch  =   z9hG4bK9ikj8  , SIP  /    2.0   / UDP  192.168.255.111   ; branch= z9hG4bK30239").unwrap();
    assert_eq!(v.len(), 2);
    assert_eq!(v[0].transport, "TCP");
    assert_eq!(v[1].branch(), Some("z9hG4bK30239"));
    assert!(via("SIP/2.0/UDP 192.0.2.15;;,;,,").is_err());
    let v =
        via("SIP/2.0/UDP [2001:db8::9:1]:5060;received=[2001:db8::9:255];branch=z9hG4bKas3;rport")
            .unwrap();
    assert_eq!(v[0].sent_by(), "[2001:db8::9:1]:5060");
    assert!(v[0].has_rport());
    assert!(via("SIP/2.0/UDP host : 5070;branch=z9hG4bKx").is_ok_and(|v| v[0].port == Some(5070)));
    assert!(via("SIP/2.0/UDP two words;branch=z9hG4bKx").is_err());
    assert!(via("SIP/2.0/UDP").is_err());
    assert!(via("SIP/2.0/UNKNOWN t4.example.com;branch=z9hG4bKasd0f3en").is_ok());
}

#[test]
fn scalars() {
    assert_eq!(cseq("0009 INVITE"), Ok((9, "INVITE")));
    assert_eq!(cseq("2147483647 BYE"), Ok((2147483647, "BYE")));
    assert!(cseq("2147483648 BYE").is_err());
    assert!(cseq("36893488147419103232 REGISTER").is_err());
    assert!(cseq("-1 BYE").is_err());
    assert!(cseq("1").is_err());
    assert_eq!(max_forwards("0068"), Ok(68));
    assert_eq!(max_forwards("0"), Ok(0));
    assert!(max_forwards("300").is_err());
    assert!(max_forwards("-1").is_err());
    assert_eq!(content_length("0"), Ok(0));
    assert!(content_length("-999").is_err());
    assert!(content_length("99999999999999999999").is_err());
    assert!(content_length("12a").is_err());
    assert!(call_id("intmeth.word%ZK-!.*_+'@word`~)(><:\\/\"][?}{").is_ok());
    assert!(call_id("has space").is_err());
    assert!(call_id("a@b@c").is_err());
    assert_eq!(
        media_type("Application/SDP ; charset=x"),
        Some("application/sdp".into())
    );
}

#[test]
fn never_panics_on_arbitrary_text() {
    let mut rng = fastrand::Rng::with_seed(7);
    let alphabet = "<>\"\\;:,@[]?=% \tazAZ09é\u{0}/.-";
    let chars: Vec<char> = alphabet.chars().collect();
    for _ in 0..20_000 {
        let len = rng.usize(0..40);
        let s: String = (0..len).map(|_| chars[rng.usize(0..chars.len())]).collect();
        let _ = request_line(&s);
        let _ = status_line(&s);
        let _ = uri(&s, rng.bool());
        let _ = name_addr(&s);
        let _ = via(&s);
        let _ = cseq(&s);
        let _ = split_commas(&s);
        let _ = params_from(&s, 0);
    }
}
