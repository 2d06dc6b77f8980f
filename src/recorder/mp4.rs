//! A plain (non-fragmented) MP4 writer for a video track and an optional
//! audio track: `ftyp`, then
//! `mdat` filled as frames arrive, then `moov` with the sample tables when
//! the segment is finished. Frames are written as they come (length-
//! prefixed NAL units, as retina hands them over); nothing is decoded.
//!
//! Until `finish` the file has no `moov` and is not playable: a crash
//! loses at most the segment being written, which start-up reconciliation
//! discards.

use std::io::{Seek, SeekFrom, Write};

fn bx(kind: &[u8; 4], body: &[u8]) -> Vec<u8> {
    let mut v = Vec::with_capacity(body.len() + 8);
    v.extend_from_slice(&((body.len() + 8) as u32).to_be_bytes());
    v.extend_from_slice(kind);
    v.extend_from_slice(body);
    v
}

fn full(kind: &[u8; 4], version: u8, flags: u32, body: &[u8]) -> Vec<u8> {
    let mut b = Vec::with_capacity(body.len() + 4);
    b.push(version);
    b.extend_from_slice(&flags.to_be_bytes()[1..]);
    b.extend_from_slice(body);
    bx(kind, &b)
}

fn u32s(vals: &[u32]) -> Vec<u8> {
    vals.iter().flat_map(|v| v.to_be_bytes()).collect()
}

const MATRIX: [u32; 9] = [0x0001_0000, 0, 0, 0, 0x0001_0000, 0, 0, 0, 0x4000_0000];

#[derive(Debug, Clone, Copy)]
struct Sample {
    offset: u64,
    size: u32,
    duration: u32,
    sync: bool,
}

/// What a track carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Video { width: u32, height: u32 },
    Audio,
}

struct Track {
    kind: Kind,
    sample_entry: Vec<u8>,
    timescale: u32,
    /// Duration given to the last sample (and to one after a jump).
    nominal: u32,
    samples: Vec<Sample>,
    /// Timestamp (in `timescale`) of the last sample, to derive durations.
    last_ts: Option<i64>,
}

impl Track {
    fn duration(&self) -> u64 {
        self.samples.iter().map(|s| u64::from(s.duration)).sum()
    }
}

/// Movie timescale (mvhd, tkhd durations): milliseconds.
const MOVIE_TIMESCALE: u32 = 1000;

/// One segment being written: a video track and, when the camera sends
/// audio, an audio track.
pub struct Mp4Writer<W: Write + Seek> {
    out: W,
    tracks: Vec<Track>,
    mdat_start: u64,
    pos: u64,
}

impl<W: Write + Seek> Mp4Writer<W> {
    /// `sample_entry` is a complete `avc1`/`hvc1` box (retina builds it).
    pub fn new(
        mut out: W,
        sample_entry: Vec<u8>,
        (width, height): (u32, u32),
        timescale: u32,
    ) -> std::io::Result<Self> {
        let ftyp = bx(
            b"ftyp",
            &[
                b"isom".as_slice(),
                &0x200u32.to_be_bytes(),
                b"isomiso2avc1mp41",
            ]
            .concat(),
        );
        out.write_all(&ftyp)?;
        let mdat_start = ftyp.len() as u64;
        // mdat header; its size is patched in `finish`.
        out.write_all(&[0, 0, 0, 8, b'm', b'd', b'a', b't'])?;
        Ok(Self {
            out,
            tracks: vec![Track {
                kind: Kind::Video { width, height },
                sample_entry,
                timescale,
                nominal: timescale / 25,
                samples: Vec::new(),
                last_ts: None,
            }],
            mdat_start,
            pos: mdat_start + 8,
        })
    }

    /// Add an audio track (`mp4a` sample entry); returns its index for
    /// [`push_to`](Self::push_to). `frame_length` is the samples per frame
    /// (1024 for AAC).
    pub fn add_audio(&mut self, sample_entry: Vec<u8>, timescale: u32, frame_length: u32) -> usize {
        self.tracks.push(Track {
            kind: Kind::Audio,
            sample_entry,
            timescale,
            nominal: frame_length.max(1),
            samples: Vec::new(),
            last_ts: None,
        });
        self.tracks.len() - 1
    }

    /// Video samples so far.
    pub fn samples(&self) -> usize {
        self.tracks[0].samples.len()
    }

    /// Append one video frame with its timestamp (in the video timescale).
    pub fn push(&mut self, ts: i64, data: &[u8], sync: bool) -> std::io::Result<()> {
        self.push_to(0, ts, data, sync)
    }

    /// Append one sample to a track.
    pub fn push_to(
        &mut self,
        track: usize,
        ts: i64,
        data: &[u8],
        sync: bool,
    ) -> std::io::Result<()> {
        let Some(t) = self.tracks.get_mut(track) else {
            return Err(std::io::Error::other(format!("no track {track}")));
        };
        if let (Some(last), Some(prev)) = (t.last_ts, t.samples.last_mut()) {
            // A timestamp that goes back or jumps is not fatal: give the
            // previous sample a nominal duration instead.
            let d = ts - last;
            prev.duration = if d > 0 && d < i64::from(t.timescale) * 10 {
                d as u32
            } else {
                t.nominal
            };
        }
        self.out.write_all(data)?;
        t.samples.push(Sample {
            offset: self.pos,
            size: data.len() as u32,
            duration: t.nominal,
            sync,
        });
        self.pos += data.len() as u64;
        t.last_ts = Some(ts);
        Ok(())
    }

    /// Video duration so far, in the video timescale.
    pub fn duration(&self) -> u64 {
        self.tracks[0].duration()
    }

    /// Write `moov`, patch the `mdat` size, flush; returns the writer.
    pub fn finish(mut self) -> std::io::Result<W> {
        let mdat_size = self.pos - self.mdat_start;
        let moov = self.moov();
        self.out.write_all(&moov)?;
        self.out.seek(SeekFrom::Start(self.mdat_start))?;
        self.out.write_all(&(mdat_size as u32).to_be_bytes())?;
        self.out.seek(SeekFrom::End(0))?;
        self.out.flush()?;
        Ok(self.out)
    }

    fn moov(&self) -> Vec<u8> {
        let movie_ms =
            |t: &Track| t.duration() * u64::from(MOVIE_TIMESCALE) / u64::from(t.timescale.max(1));
        // Audio only counts when it has samples.
        let tracks: Vec<&Track> = self
            .tracks
            .iter()
            .filter(|t| matches!(t.kind, Kind::Video { .. }) || !t.samples.is_empty())
            .collect();
        let dur = tracks.iter().map(|t| movie_ms(t)).max().unwrap_or(0) as u32;
        let mut mvhd = u32s(&[0, 0, MOVIE_TIMESCALE, dur, 0x0001_0000]);
        mvhd.extend_from_slice(&0x0100u16.to_be_bytes());
        mvhd.extend_from_slice(&[0; 10]);
        mvhd.extend(u32s(&MATRIX));
        mvhd.extend_from_slice(&[0; 24]);
        mvhd.extend(u32s(&[tracks.len() as u32 + 1]));
        let mut moov = full(b"mvhd", 0, 0, &mvhd);
        for (i, t) in tracks.iter().enumerate() {
            moov.extend(self.trak(t, i as u32 + 1, movie_ms(t) as u32));
        }
        bx(b"moov", &moov)
    }

    fn trak(&self, t: &Track, id: u32, movie_dur: u32) -> Vec<u8> {
        let (w, h, volume, handler, name): (u32, u32, u16, &[u8; 4], &[u8]) = match t.kind {
            Kind::Video { width, height } => (width, height, 0, b"vide", b"camfleet video\0"),
            Kind::Audio => (0, 0, 0x0100, b"soun", b"camfleet audio\0"),
        };
        let mut tkhd = u32s(&[0, 0, id, 0, movie_dur, 0, 0]);
        tkhd.extend_from_slice(&[0, 0, 0, 0]); // layer, alternate group
        tkhd.extend_from_slice(&volume.to_be_bytes());
        tkhd.extend_from_slice(&[0, 0]); // reserved
        tkhd.extend(u32s(&MATRIX));
        tkhd.extend(u32s(&[w << 16, h << 16]));
        let mut mdhd = u32s(&[0, 0, t.timescale, t.duration() as u32]);
        mdhd.extend_from_slice(&0x55c4u16.to_be_bytes()); // "und"
        mdhd.extend_from_slice(&[0, 0]);
        let mut hdlr = u32s(&[0]);
        hdlr.extend_from_slice(handler);
        hdlr.extend_from_slice(&[0; 12]);
        hdlr.extend_from_slice(name);
        // Sample tables.
        let mut stts: Vec<(u32, u32)> = Vec::new();
        for s in &t.samples {
            match stts.last_mut() {
                Some((n, d)) if *d == s.duration => *n += 1,
                _ => stts.push((1, s.duration)),
            }
        }
        let mut stts_b = u32s(&[stts.len() as u32]);
        for (n, d) in &stts {
            stts_b.extend(u32s(&[*n, *d]));
        }
        let n = t.samples.len() as u32;
        // One chunk per sample: simple and exact.
        let stsc = u32s(&[1, 1, 1, 1]);
        let mut stsz = u32s(&[0, n]);
        stsz.extend(t.samples.iter().flat_map(|s| s.size.to_be_bytes()));
        let big = self.pos > u64::from(u32::MAX);
        let (co_kind, co) = if big {
            let mut v = u32s(&[n]);
            v.extend(t.samples.iter().flat_map(|s| s.offset.to_be_bytes()));
            (b"co64", v)
        } else {
            let mut v = u32s(&[n]);
            v.extend(
                t.samples
                    .iter()
                    .flat_map(|s| (s.offset as u32).to_be_bytes()),
            );
            (b"stco", v)
        };
        let mut stsd = u32s(&[1]);
        stsd.extend_from_slice(&t.sample_entry);
        let mut stbl = full(b"stsd", 0, 0, &stsd);
        stbl.extend(full(b"stts", 0, 0, &stts_b));
        if matches!(t.kind, Kind::Video { .. }) {
            let sync: Vec<u32> = t
                .samples
                .iter()
                .enumerate()
                .filter(|(_, s)| s.sync)
                .map(|(i, _)| i as u32 + 1)
                .collect();
            let mut stss = u32s(&[sync.len() as u32]);
            stss.extend(u32s(&sync));
            stbl.extend(full(b"stss", 0, 0, &stss));
        }
        stbl.extend(full(b"stsc", 0, 0, &stsc));
        stbl.extend(full(b"stsz", 0, 0, &stsz));
        stbl.extend(full(co_kind, 0, 0, &co));
        let dinf = bx(
            b"dinf",
            &full(
                b"dref",
                0,
                0,
                &[u32s(&[1]), full(b"url ", 0, 1, &[])].concat(),
            ),
        );
        let media_header = match t.kind {
            Kind::Video { .. } => full(b"vmhd", 0, 1, &[0; 8]),
            Kind::Audio => full(b"smhd", 0, 0, &[0; 4]),
        };
        let minf = bx(b"minf", &[media_header, dinf, bx(b"stbl", &stbl)].concat());
        let mdia = bx(
            b"mdia",
            &[full(b"mdhd", 0, 0, &mdhd), full(b"hdlr", 0, 0, &hdlr), minf].concat(),
        );
        bx(b"trak", &[full(b"tkhd", 0, 3, &tkhd), mdia].concat())
    }
}

/// The top-level boxes of a file: (kind, size). For checks and the scrub.
pub fn top_boxes(b: &[u8]) -> Vec<([u8; 4], u64)> {
    let mut out = Vec::new();
    let mut i = 0usize;
    while i + 8 <= b.len() {
        let size = u32::from_be_bytes([b[i], b[i + 1], b[i + 2], b[i + 3]]) as u64;
        let kind = [b[i + 4], b[i + 5], b[i + 6], b[i + 7]];
        if size < 8 {
            break;
        }
        out.push((kind, size));
        i += size as usize;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_segment_has_ftyp_mdat_moov_with_every_sample() {
        let entry = bx(b"avc1", &[0u8; 78]);
        let mut w =
            Mp4Writer::new(std::io::Cursor::new(Vec::new()), entry, (640, 360), 90_000).unwrap();
        for i in 0..50i64 {
            w.push(i * 3600, &[0, 0, 0, 4, 0x65, 1, 2, 3], i % 25 == 0)
                .unwrap();
        }
        assert_eq!(w.duration(), 50 * 3600);
        let file = w.finish().unwrap().into_inner();
        let boxes = top_boxes(&file);
        let kinds: Vec<&[u8]> = boxes.iter().map(|(k, _)| k.as_slice()).collect();
        assert_eq!(kinds, [b"ftyp".as_slice(), b"mdat", b"moov"]);
        assert_eq!(boxes[1].1, 8 + 50 * 8, "mdat holds every frame");
        assert_eq!(boxes.iter().map(|(_, s)| s).sum::<u64>(), file.len() as u64);
    }
}
