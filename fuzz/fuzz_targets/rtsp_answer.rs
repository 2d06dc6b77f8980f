//! Bytes from an RTSP server: message heads read one after another (as the
//! client reads answers) and the answer's SDP, including the parameter
//! sets in its fmtp. Must return, never panic.
#![no_main]
use camfleet::recorder::depack::{VideoCodec, VideoDepacketizer};
use camfleet::recorder::rtsp;
use libfuzzer_sys::fuzz_target;

fn runtime() -> &'static tokio::runtime::Runtime {
    static RT: std::sync::OnceLock<tokio::runtime::Runtime> = std::sync::OnceLock::new();
    RT.get_or_init(|| {
        tokio::runtime::Builder::new_current_thread()
            .build()
            .expect("runtime")
    })
}

fuzz_target!(|data: &[u8]| {
    runtime().block_on(async {
        let mut rd = tokio::io::BufReader::new(data);
        for _ in 0..16 {
            match rtsp::read_head(&mut rd, 4096).await {
                Ok(Some(head)) => {
                    let _ = head.content_length();
                    let _ = head.header("CSeq");
                    let _ = head.header("Session");
                }
                _ => break,
            }
        }
    });
    let text = String::from_utf8_lossy(data);
    if let Some(v) = rtsp::sdp_video(&text, "rtsp://127.0.0.1:554/stream") {
        if let Some(codec) = VideoCodec::from_encoding(&v.encoding) {
            let d = VideoDepacketizer::from_fmtp(codec, &v.fmtp);
            let _ = d.sample_entry();
        }
    }
});
