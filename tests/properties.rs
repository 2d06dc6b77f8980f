//! Properties over generated input: no parser of network or form input
//! panics, and what we write reads back.

use camfleet::discovery::message;
use camfleet::fleet::inventory::parse_money;
use camfleet::onvif::{address, envelope, time, wsse};
use camfleet::xml;
use proptest::prelude::*;

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn envelope_and_discovery_parsers_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..2048)) {
        let _ = envelope::parse(&bytes);
        let _ = message::parse(&bytes);
    }

    #[test]
    fn xml_like_text_never_panics(s in "(<[a-z:]{0,6}( [a-z:]{1,4}=\"[^\"<]{0,6}\")?/?>|</[a-z:]{0,6}>|&[a-z#0-9]{0,5};|[^<&]{0,8}){0,40}") {
        let _ = xml::parse(s.as_bytes());
    }

    #[test]
    fn event_parsers_never_panic(s in "(<(Topic|Message|SimpleItem|Data|Source|NotificationMessage|SubscriptionReference|Address|ReferenceParameters|CurrentTime|TerminationTime)( (Name|Value|UtcTime)=\"[^\"<]{0,12}\")?/?>|</[A-Za-z]{0,12}>|[^<&]{0,12}){0,40}") {
        if let Ok(root) = xml::parse(format!("<R>{s}</R>").as_bytes()) {
            let _ = camfleet::onvif::events::parse_subscription(&root);
            for m in camfleet::onvif::events::parse_pulled(&root).messages {
                let _ = camfleet::onvif::events::signal(&m);
            }
        }
    }

    #[test]
    fn escaped_text_reads_back(text in "\\PC{0,64}") {
        let doc = format!("<r>{}</r>", xml::escape(&text));
        let root = xml::parse(doc.as_bytes()).unwrap();
        prop_assert_eq!(root.text, text);
    }

    #[test]
    fn address_repair_and_rewrite_never_panic(s in "\\PC{0,80}") {
        let reached = url::Url::parse("http://127.0.0.1:8080/onvif/device_service").unwrap();
        let _ = address::repair(&s);
        let _ = address::rewrite(&s, &reached);
    }

    #[test]
    fn posix_tz_never_panics(s in "\\PC{0,24}", dst in any::<bool>()) {
        let _ = time::posix_tz_utc_offset(&s, dst);
    }

    #[test]
    fn wsse_digest_verifies_what_it_makes(pw in "\\PC{0,32}", nonce in proptest::collection::vec(any::<u8>(), 16..32)) {
        use base64::Engine;
        let created = "2026-11-26T03:04:05Z";
        let digest = wsse::password_digest(&nonce, created, &pw);
        let nonce_b64 = base64::engine::general_purpose::STANDARD.encode(&nonce);
        prop_assert!(wsse::verify_digest(&nonce_b64, created, &pw, &digest));
        let wrong = format!("{}x", pw);
        prop_assert!(!wsse::verify_digest(&nonce_b64, created, &wrong, &digest));
    }

    #[test]
    fn money_parses_what_it_prints(cents in 0i64..100_000_000_000) {
        let text = format!("{}.{:02}", cents / 100, cents % 100);
        prop_assert_eq!(parse_money(&text), Ok(Some(cents)));
    }

    #[test]
    fn money_never_panics(s in "\\PC{0,16}") {
        let _ = parse_money(&s);
    }
}
