//! Every checked-in fuzz seed (fuzz/seeds/TARGET/*), crash regressions
//! among them, through the same code the fuzz target drives: a plain test,
//! so a fixed panic stays fixed without cargo-fuzz.

use camfleet::recorder::depack::{self, VideoCodec, VideoDepacketizer};

fn seeds(target: &str) -> Vec<(String, Vec<u8>)> {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fuzz/seeds")
        .join(target);
    let mut out: Vec<(String, Vec<u8>)> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| {
            let p = e.unwrap().path();
            (p.display().to_string(), std::fs::read(&p).unwrap())
        })
        .collect();
    out.sort();
    assert!(!out.is_empty(), "no seeds for {target}");
    out
}

/// As `fuzz/fuzz_targets/rtp_video.rs`.
#[test]
fn rtp_video_seeds() {
    for (name, data) in seeds("rtp_video") {
        for codec in [VideoCodec::H264, VideoCodec::H265] {
            let mut d = VideoDepacketizer::from_fmtp(codec, "");
            let mut rest = &data[..];
            while rest.len() >= 2 {
                let n = (u16::from_be_bytes([rest[0], rest[1]]) as usize).min(rest.len() - 2);
                let packet = &rest[2..2 + n];
                rest = &rest[2 + n..];
                if let Ok(p) = depack::parse_rtp(packet)
                    && let Some(au) = d.push(&p)
                {
                    let _ = depack::h265_irap(&au.data);
                }
            }
            let _ = d.sample_entry();
            eprintln!("{name}: ok");
        }
    }
}

/// As `fuzz/fuzz_targets/sps.rs`.
#[test]
fn sps_seeds() {
    for (_, data) in seeds("sps") {
        if let Some(info) = camfleet::recorder::hevc::sps_info(&data) {
            let _ = camfleet::recorder::hevc::hvcc(&info, &data, &data, &data);
        }
        let mut d = VideoDepacketizer::from_fmtp(VideoCodec::H264, "");
        d.sps = Some(data.clone());
        d.pps = Some(vec![0x68, 0xce, 0x38, 0x80]);
        let _ = d.sample_entry();
    }
}

/// As `fuzz/fuzz_targets/mtom.rs`.
#[test]
fn mtom_seeds() {
    for (_, data) in seeds("mtom") {
        let split = data.iter().position(|b| *b == b'\n').unwrap_or(data.len());
        let content_type = String::from_utf8_lossy(&data[..split]);
        let body = data.get(split + 1..).unwrap_or_default();
        if let Some((root, parts)) = camfleet::onvif::mtom::split_multipart(&content_type, body)
            && let Ok(mut el) = camfleet::xml::parse(&root)
        {
            camfleet::onvif::mtom::inline_attachments(&mut el, &parts);
        }
    }
}

/// As `fuzz/fuzz_targets/mp4_reader.rs`.
#[test]
fn mp4_reader_seeds() {
    for (_, data) in seeds("mp4_reader") {
        let _ = camfleet::recorder::mp4::top_boxes(&data);
        let _ = camfleet::recorder::mp4::read_tracks(&data);
    }
}

/// As `fuzz/fuzz_targets/cron_expr.rs`: every seed is a valid schedule.
#[test]
fn cron_expr_seeds() {
    for (name, data) in seeds("cron_expr") {
        let text = String::from_utf8(data).unwrap();
        let s = camfleet::fleet::schedule::JobSchedule::parse(&text)
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        let start = chrono::DateTime::from_timestamp(1_790_000_000, 0)
            .unwrap()
            .with_timezone(&chrono_tz::Europe::Berlin);
        assert_eq!(s.after(&start).take(3).count(), 3, "{name}");
    }
}

/// As `fuzz/fuzz_targets/hello_bye.rs`: the seeds parse, and a repeat is
/// dropped.
#[test]
fn hello_bye_seeds() {
    use camfleet::discovery::hello::SequenceTracker;
    use camfleet::discovery::message::{self, MessageKind};
    for (name, data) in seeds("hello_bye") {
        let mut t = SequenceTracker::default();
        let m = message::parse(&data).unwrap_or_else(|e| panic!("{name}: {e}"));
        let endpoint = match &m.kind {
            MessageKind::Hello(h) => h.endpoint.clone(),
            MessageKind::Bye { endpoint } => endpoint.clone(),
            other => panic!("{name}: {other:?}"),
        };
        assert!(t.accept(&endpoint, m.message_id.as_deref(), m.app_sequence));
        assert!(!t.accept(&endpoint, m.message_id.as_deref(), m.app_sequence));
    }
}

/// As the SDP half of `fuzz/fuzz_targets/rtsp_answer.rs`.
#[test]
fn rtsp_answer_seeds() {
    let mut found = 0;
    for (_, data) in seeds("rtsp_answer") {
        let text = String::from_utf8_lossy(&data);
        if let Some(v) = camfleet::recorder::rtsp::sdp_video(&text, "rtsp://127.0.0.1:554/stream")
            && let Some(codec) = VideoCodec::from_encoding(&v.encoding)
        {
            let d = VideoDepacketizer::from_fmtp(codec, &v.fmtp);
            found += usize::from(d.sps.is_some());
        }
    }
    assert!(found >= 2, "the DESCRIBE seeds carry parameter sets");
}
