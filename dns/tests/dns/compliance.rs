//! Protocol details a compliance run checks: the DO bit echoed (RFC 3225
//! §3), IXFR refused like AXFR, no AA on REFUSED, the client's letter case
//! kept in answers (0x20), on the fast UDP path and on hickory's (TCP, and
//! UDP queries the fast path leaves to hickory).

use hickory_resolver::proto::op::{Edns, Message, ResponseCode};
use hickory_resolver::proto::rr::{DNSClass, Name, RecordType};

use crate::support::{TestServer, WEB_VIP, addresses, query, sample, tcp, udp};

const WEB: &str = "web.prod.svc.clusterset.local.";

fn with_do(mut message: Message, dnssec_ok: bool) -> Message {
    let mut edns = Edns::new();
    edns.set_max_payload(1232).set_dnssec_ok(dnssec_ok);
    message.set_edns(edns);
    message
}

#[track_caller]
fn assert_do(reply: &Message, expected: bool) {
    let edns = reply.edns.as_ref().expect("an OPT answers an OPT");
    assert_eq!(edns.flags().dnssec_ok, expected, "DO bit: {reply}");
}

#[tokio::test]
async fn the_do_bit_of_the_query_is_echoed_over_udp_and_tcp() {
    let dns = TestServer::start(sample()).await;
    // A (fast path over UDP), ANY (hickory over UDP), NXDOMAIN.
    let questions = [
        (WEB, RecordType::A),
        (WEB, RecordType::ANY),
        ("nope.prod.svc.clusterset.local.", RecordType::A),
    ];
    for (name, rtype) in questions {
        for dnssec_ok in [true, false] {
            let message = with_do(query(name, rtype), dnssec_ok);
            assert_do(&udp(dns.addr(), &message).await, dnssec_ok);
            assert_do(&tcp(dns.addr(), &message).await, dnssec_ok);
        }
    }
}

#[tokio::test]
async fn ixfr_is_refused_like_axfr_without_aa() {
    let dns = TestServer::start(sample()).await;
    let message = query("clusterset.local.", RecordType::IXFR);
    for reply in [
        udp(dns.addr(), &message).await,
        tcp(dns.addr(), &message).await,
    ] {
        assert_eq!(
            reply.metadata.response_code,
            ResponseCode::Refused,
            "{reply}"
        );
        assert!(!reply.metadata.authoritative, "no AA on REFUSED: {reply}");
        assert!(reply.answers.is_empty(), "{reply}");
    }
}

#[tokio::test]
async fn refused_answers_carry_no_aa() {
    let dns = TestServer::start(sample()).await;
    let mut chaos = query(WEB, RecordType::A);
    chaos.queries[0].set_query_class(DNSClass::CH);
    let outside = query("example.com.", RecordType::A);
    let axfr = query("clusterset.local.", RecordType::AXFR);
    for message in [chaos, outside] {
        for reply in [
            udp(dns.addr(), &message).await,
            tcp(dns.addr(), &message).await,
        ] {
            assert_eq!(
                reply.metadata.response_code,
                ResponseCode::Refused,
                "{reply}"
            );
            assert!(!reply.metadata.authoritative, "no AA on REFUSED: {reply}");
        }
    }
    let reply = tcp(dns.addr(), &axfr).await;
    assert_eq!(
        reply.metadata.response_code,
        ResponseCode::Refused,
        "{reply}"
    );
    assert!(!reply.metadata.authoritative, "no AA on REFUSED: {reply}");
}

#[tokio::test]
async fn answers_keep_the_clients_letter_case() {
    let dns = TestServer::start(sample()).await;
    let spelled = "wEb.PrOd.sVc.ClUsTeRsEt.LoCaL.";
    let message = with_do(query(spelled, RecordType::A), false);
    for reply in [
        udp(dns.addr(), &message).await,
        tcp(dns.addr(), &message).await,
    ] {
        assert_eq!(addresses(&reply), vec![WEB_VIP], "{reply}");
        let owner = &reply.answers[0].name;
        assert_eq!(owner.to_string(), spelled, "{reply}");
        assert_eq!(reply.queries[0].name().to_string(), spelled);
        assert_eq!(*owner, Name::from_ascii(WEB).expect("valid"));
    }
}
