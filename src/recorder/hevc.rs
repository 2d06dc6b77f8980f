//! What an MP4 needs from an H.265 SPS (ITU-T H.265 §7.3.2.2): the general
//! profile/tier/level bytes, chroma format, bit depths and the cropped
//! picture size; and the `hvcC` box (ISO/IEC 14496-15 §8.3.3) built from
//! the VPS, SPS and PPS. Only the fields before the first optional
//! extension are read; nothing here can panic on a broken SPS.

/// The SPS fields `hvcC` and the sample entry need.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpsInfo {
    /// general_profile_space … general_level_idc, as coded (12 bytes).
    pub ptl: [u8; 12],
    pub max_sub_layers: u8,
    pub temporal_id_nested: bool,
    pub chroma_format_idc: u32,
    pub bit_depth_luma_minus8: u32,
    pub bit_depth_chroma_minus8: u32,
    pub width: u32,
    pub height: u32,
}

/// NAL payload without its emulation-prevention bytes (00 00 03 → 00 00).
fn rbsp(nal: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(nal.len());
    let mut zeros = 0;
    for &b in nal {
        if zeros >= 2 && b == 3 {
            zeros = 0;
            continue;
        }
        zeros = if b == 0 { zeros + 1 } else { 0 };
        out.push(b);
    }
    out
}

struct Bits<'a> {
    b: &'a [u8],
    pos: usize,
}

impl Bits<'_> {
    fn bit(&mut self) -> Option<u32> {
        let byte = *self.b.get(self.pos / 8)?;
        let v = (byte >> (7 - self.pos % 8)) & 1;
        self.pos += 1;
        Some(u32::from(v))
    }

    fn bits(&mut self, n: u32) -> Option<u32> {
        let mut v = 0u32;
        for _ in 0..n {
            v = (v << 1) | self.bit()?;
        }
        Some(v)
    }

    fn skip(&mut self, n: usize) -> Option<()> {
        self.pos += n;
        (self.pos <= self.b.len() * 8).then_some(())
    }

    /// Exp-Golomb, unsigned (at most 32 leading zeros).
    fn ue(&mut self) -> Option<u32> {
        let mut zeros = 0;
        while self.bit()? == 0 {
            zeros += 1;
            if zeros > 31 {
                return None;
            }
        }
        let rest = self.bits(zeros)?;
        Some(((1u64 << zeros) - 1 + u64::from(rest)) as u32)
    }
}

/// Read an SPS NAL unit (with its two-byte header).
pub fn sps_info(nal: &[u8]) -> Option<SpsInfo> {
    let data = rbsp(nal.get(2..)?);
    let mut r = Bits { b: &data, pos: 0 };
    r.bits(4)?; // sps_video_parameter_set_id
    let max_sub_layers_minus1 = r.bits(3)?;
    let nested = r.bit()? == 1;
    let ptl: [u8; 12] = data.get(1..13)?.try_into().ok()?;
    r.skip(96)?;
    let mut profile_present = Vec::new();
    let mut level_present = Vec::new();
    for _ in 0..max_sub_layers_minus1 {
        profile_present.push(r.bit()? == 1);
        level_present.push(r.bit()? == 1);
    }
    if max_sub_layers_minus1 > 0 {
        r.skip(2 * (8 - max_sub_layers_minus1 as usize))?;
    }
    for i in 0..max_sub_layers_minus1 as usize {
        if profile_present[i] {
            r.skip(88)?;
        }
        if level_present[i] {
            r.skip(8)?;
        }
    }
    r.ue()?; // sps_seq_parameter_set_id
    let chroma = r.ue()?;
    if chroma > 3 {
        return None;
    }
    if chroma == 3 {
        r.bit()?; // separate_colour_plane_flag
    }
    let mut width = r.ue()?;
    let mut height = r.ue()?;
    if r.bit()? == 1 {
        let (sub_w, sub_h) = match chroma {
            1 => (2, 2),
            2 => (2, 1),
            _ => (1, 1),
        };
        let (left, right, top, bottom) = (r.ue()?, r.ue()?, r.ue()?, r.ue()?);
        // Cropping from the camera: checked, a huge window is no picture.
        width = width.checked_sub(left.checked_add(right)?.checked_mul(sub_w)?)?;
        height = height.checked_sub(top.checked_add(bottom)?.checked_mul(sub_h)?)?;
    }
    let bit_depth_luma_minus8 = r.ue()?;
    let bit_depth_chroma_minus8 = r.ue()?;
    if width == 0 || height == 0 || width > 16384 || height > 16384 {
        return None;
    }
    Some(SpsInfo {
        ptl,
        max_sub_layers: max_sub_layers_minus1 as u8 + 1,
        temporal_id_nested: nested,
        chroma_format_idc: chroma,
        bit_depth_luma_minus8: bit_depth_luma_minus8.min(7),
        bit_depth_chroma_minus8: bit_depth_chroma_minus8.min(7),
        width,
        height,
    })
}

/// The `hvcC` payload: the configuration record with one VPS, SPS and PPS,
/// NAL units four-byte length-prefixed in the samples.
pub fn hvcc(info: &SpsInfo, vps: &[u8], sps: &[u8], pps: &[u8]) -> Vec<u8> {
    let mut c = vec![1u8];
    c.extend_from_slice(&info.ptl);
    c.extend_from_slice(&0xf000u16.to_be_bytes()); // min_spatial_segmentation_idc 0
    c.push(0xfc); // parallelismType unknown
    c.push(0xfc | info.chroma_format_idc as u8);
    c.push(0xf8 | info.bit_depth_luma_minus8 as u8);
    c.push(0xf8 | info.bit_depth_chroma_minus8 as u8);
    c.extend_from_slice(&0u16.to_be_bytes()); // avgFrameRate unknown
    c.push(((info.max_sub_layers & 7) << 3) | (u8::from(info.temporal_id_nested) << 2) | 3);
    c.push(3);
    for (kind, nal) in [(32u8, vps), (33, sps), (34, pps)] {
        c.push(0x80 | kind); // array_completeness
        c.extend_from_slice(&1u16.to_be_bytes());
        c.extend_from_slice(&(nal.len() as u16).to_be_bytes());
        c.extend_from_slice(nal);
    }
    c
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_simulators_h265_sps_reads_as_320x240_main_8_bit() {
        let clip = crate::sim::clip::clip_h265();
        let sps = &clip.params[1];
        let info = sps_info(sps).unwrap();
        assert_eq!((info.width, info.height), (320, 240));
        assert_eq!(info.chroma_format_idc, 1);
        assert_eq!(
            (info.bit_depth_luma_minus8, info.bit_depth_chroma_minus8),
            (0, 0)
        );
        assert_eq!(info.ptl[0] & 0x1f, 1, "Main profile");
        let c = hvcc(&info, &clip.params[0], sps, &clip.params[2]);
        assert_eq!(c[0], 1);
        assert_eq!(c[22], 3, "three arrays");
        // Broken input: None, not a panic.
        for cut in 0..sps.len() {
            let _ = sps_info(&sps[..cut]);
        }
        assert!(sps_info(&[0x42, 0x01, 0xff, 0xff]).is_none());
    }

    #[test]
    fn emulation_prevention_bytes_are_removed() {
        assert_eq!(
            rbsp(&[0, 0, 3, 1, 0, 0, 3, 0, 5]),
            vec![0, 0, 1, 0, 0, 0, 5]
        );
    }
}
