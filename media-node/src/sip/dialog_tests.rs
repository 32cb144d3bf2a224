use rsipstack::sip::{Method, Request, Response, SipMessage};

use super::*;

fn request(text: &str) -> Request {
    match SipMessage::try_from(text.replace('\n', "\r\n").as_str()) {
        Ok(SipMessage::Request(r)) => r,
        other => panic!("bad fixture: {other:?}"),
    }
}

fn response(text: &str) -> Response {
    match SipMessage::try_from(text.replace('\n', "\r\n").as_str()) {
        Ok(SipMessage::Response(r)) => r,
        other => panic!("bad fixture: {other:?}"),
    }
}

const OUR_INVITE: &str = "INVITE sip:agent@192.0.2.20 SIP/2.0
Via: SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bK-n1-1
From: \"Dialtone\" <sip:node@192.0.2.1>;tag=local1
To: <sip:agent@example.com>
Call-ID: c-42
CSeq: 10 INVITE
Contact: <sip:node@192.0.2.1:5060>
Content-Length: 0

";

fn answer(code: u16) -> Response {
    response(&format!(
        "SIP/2.0 {code} X
Via: SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bK-n1-1
Record-Route: <sip:p1.example.com;lr>, <sip:p2.example.com;lr>
Record-Route: <sip:p3.example.com;lr>
From: \"Dialtone\" <sip:node@192.0.2.1>;tag=local1
To: <sip:agent@example.com>;tag=remote1
Call-ID: c-42
CSeq: 10 INVITE
Contact: <sip:agent@192.0.2.20:5070;transport=udp>
Content-Length: 0

"
    ))
}

fn header(r: &Request, name: &str) -> Vec<String> {
    r.headers
        .iter()
        .filter(|h| h.name().eq_ignore_ascii_case(name))
        .map(|h| h.value().to_string())
        .collect()
}

#[test]
fn uac_dialog_from_provisional_then_2xx_and_in_dialog_requests() {
    let invite = request(OUR_INVITE);
    let mut d = Dialog::uac(&invite, &answer(180), "sip:node@192.0.2.1:5060").unwrap();
    assert_eq!(d.state, DialogState::Early);
    assert_eq!(d.id.local_tag, "local1");
    assert_eq!(d.id.remote_tag, "remote1");
    assert_eq!(d.local_uri, "\"Dialtone\" <sip:node@192.0.2.1>");
    assert_eq!(
        d.route_set,
        vec![
            "<sip:p3.example.com;lr>",
            "<sip:p2.example.com;lr>",
            "<sip:p1.example.com;lr>"
        ]
    );
    d.on_response(&answer(200));
    assert_eq!(d.state, DialogState::Confirmed);
    assert_eq!(d.next_hop(), "sip:p3.example.com;lr");

    let bye = d.request(Method::Bye, None).unwrap();
    assert_eq!(
        bye.uri.to_string(),
        "sip:agent@192.0.2.20:5070;transport=UDP"
    );
    assert_eq!(header(&bye, "Route").len(), 3);
    assert_eq!(header(&bye, "Route")[0], "<sip:p3.example.com;lr>");
    assert_eq!(
        header(&bye, "From"),
        vec!["\"Dialtone\" <sip:node@192.0.2.1>;tag=local1"]
    );
    assert_eq!(
        header(&bye, "To"),
        vec!["<sip:agent@example.com>;tag=remote1"]
    );
    assert_eq!(header(&bye, "CSeq"), vec!["11 BYE"]);
    let reinvite = d
        .request(
            Method::Invite,
            Some(("application/sdp", b"v=0\r\n".to_vec())),
        )
        .unwrap();
    assert_eq!(header(&reinvite, "CSeq"), vec!["12 INVITE"]);
    assert_eq!(header(&reinvite, "Content-Length"), vec!["5"]);
    let ack = d.ack(10, None).unwrap();
    assert_eq!(header(&ack, "CSeq"), vec!["10 ACK"]);
    assert!(header(&ack, "Contact").is_empty());
}

#[test]
fn strict_routing_puts_the_first_route_in_the_request_line() {
    let invite = request(OUR_INVITE);
    let mut ok = answer(200);
    ok.headers.retain(|h| !matches!(h, Header::RecordRoute(_)));
    ok.headers
        .push(Header::RecordRoute(rsipstack::sip::RecordRoute::new(
            "<sip:old@strict.example.com>",
        )));
    let mut d = Dialog::uac(&invite, &ok, "sip:node@192.0.2.1").unwrap();
    let bye = d.request(Method::Bye, None).unwrap();
    assert_eq!(bye.uri.to_string(), "sip:old@strict.example.com");
    assert_eq!(
        header(&bye, "Route"),
        vec!["<sip:agent@192.0.2.20:5070;transport=udp>"]
    );
}

#[test]
fn uas_dialog_answers_in_order_and_481s_the_unknown() {
    let invite = request(
        "INVITE sip:+15551234567@192.0.2.1 SIP/2.0
Via: SIP/2.0/UDP 198.51.100.7;branch=z9hG4bKcarrier
Record-Route: <sip:sbc.carrier.example;lr>
From: <sip:+15550001111@carrier.example>;tag=car1
To: <sip:+15551234567@carrier.example>
Call-ID: in-77
CSeq: 101 INVITE
Contact: <sip:gw@198.51.100.7>
Content-Length: 0

",
    );
    let mut d = Dialog::uas(&invite, "ours9", "sip:node@192.0.2.1").unwrap();
    d.confirm();
    let mut dialogs = Dialogs::default();
    dialogs.insert(d.clone());
    let bye = d.request(Method::Bye, None).unwrap();
    assert_eq!(bye.uri.to_string(), "sip:gw@198.51.100.7");
    assert_eq!(header(&bye, "Route"), vec!["<sip:sbc.carrier.example;lr>"]);
    assert_eq!(
        header(&bye, "From"),
        vec!["<sip:+15551234567@carrier.example>;tag=ours9"]
    );
    assert_eq!(
        header(&bye, "To"),
        vec!["<sip:+15550001111@carrier.example>;tag=car1"]
    );
    assert_eq!(header(&bye, "CSeq"), vec!["1 BYE"]);

    let in_dialog = |cseq: u32, to_tag: &str, method: &str| {
        request(&format!(
            "{method} sip:node@192.0.2.1 SIP/2.0
Via: SIP/2.0/UDP 198.51.100.7;branch=z9hG4bK{cseq}
From: <sip:+15550001111@carrier.example>;tag=car1
To: <sip:+15551234567@carrier.example>;tag={to_tag}
Call-ID: in-77
CSeq: {cseq} {method}
Contact: <sip:gw2@198.51.100.8>
Content-Length: 0

"
        ))
    };
    match dialogs.for_request(&in_dialog(102, "ours9", "INVITE")) {
        DialogMatch::Dialog(d) => assert_eq!(d.remote_target, "sip:gw2@198.51.100.8"),
        other => panic!("{other:?}"),
    }
    match dialogs.for_request(&in_dialog(100, "ours9", "BYE")) {
        DialogMatch::Refuse(Some(r)) => assert_eq!(r.status_code.code(), 500),
        other => panic!("{other:?}"),
    }
    match dialogs.for_request(&in_dialog(103, "nobody", "BYE")) {
        DialogMatch::Refuse(Some(r)) => {
            assert_eq!(r.status_code.code(), 481);
            assert!(
                r.to_bytes()
                    .starts_with(b"SIP/2.0 481 Call/Transaction Does Not Exist\r\n")
            );
        }
        other => panic!("{other:?}"),
    }
    assert!(matches!(
        dialogs.for_request(&in_dialog(103, "nobody", "ACK")),
        DialogMatch::Refuse(None)
    ));
    assert!(matches!(
        dialogs.for_request(&invite),
        DialogMatch::OutOfDialog
    ));
    assert_eq!(dialogs.len(), 1);
}

#[test]
fn responses_find_their_dialog_and_non_dialog_responses_are_refused() {
    let invite = request(OUR_INVITE);
    assert_eq!(
        Dialog::uac(&invite, &answer(100), "c").unwrap_err(),
        DialogError::NotDialogCreating(100)
    );
    let mut untagged = answer(180);
    untagged.headers.retain(|h| !matches!(h, Header::To(_)));
    untagged
        .headers
        .push(Header::To(To::new("<sip:agent@example.com>")));
    assert_eq!(
        Dialog::uac(&invite, &untagged, "c").unwrap_err(),
        DialogError::NoToTag
    );
    let mut dialogs = Dialogs::default();
    dialogs.insert(Dialog::uac(&invite, &answer(200), "c").unwrap());
    assert!(dialogs.for_response(&answer(200)).is_some());
    assert!(dialogs.for_response(&untagged).is_none());
}

#[test]
fn escaped_targets_survive_the_request_line() {
    let uri =
        uri_for_request("sip:cal%6Cer@host5.example.net;%6C%72;n%61me=v%61lue%25%34%31").unwrap();
    assert_eq!(
        uri.to_string(),
        "sip:caller@host5.example.net;%6C%72;n%61me=v%61lue%25%34%31"
    );
    let uri = uri_for_request("sip:sips%3Auser%40example.com@example.net").unwrap();
    assert_eq!(uri.to_string(), "sip:sips%3Auser%40example.com@example.net");
    let uri = uri_for_request("sip:null-%00-null@example.com").unwrap();
    assert_eq!(uri.to_string(), "sip:null-%00-null@example.com");
    assert!(uri_for_request("sip:x@h;transport=carrier-pigeon").is_err());
}
