//! To sRGB: derivatives carry no colour profile, so their pixels must be what a viewer assumes
//! of an untagged image. iPhones tag theirs Display P3, whose saturated colours an untagged
//! copy would show dull.

use moxcms::{
    CicpColorPrimaries, CicpProfile, ColorProfile, DataColorSpace, Layout as CmsLayout,
    MatrixCoefficients, TransferCharacteristics, Transform8BitExecutor, TransformOptions,
};

use super::{Layout, Profile, Raster};

/// Pixels converted per step, through a scratch buffer of this size rather than a second
/// copy of the image.
const CHUNK_PIXELS: usize = 4096;

/// Converts RGB pixels from the declared profile to sRGB. A profile that is missing,
/// malformed, unsupported or already sRGB leaves the pixels as they are: sRGB is what an
/// untagged image is taken to be anyway.
pub(super) fn to_srgb(raster: &mut Raster, profile: Option<&Profile>) {
    if raster.layout != Layout::Rgb {
        return;
    }
    let Some(source) = profile.and_then(source_profile) else {
        return;
    };
    let Ok(transform) = source.create_transform_8bit(
        CmsLayout::Rgb,
        &ColorProfile::new_srgb(),
        CmsLayout::Rgb,
        TransformOptions::default(),
    ) else {
        return;
    };
    if is_identity(transform.as_ref()) {
        return;
    }
    let mut scratch = vec![0; CHUNK_PIXELS * 3];
    for chunk in raster.data.chunks_mut(CHUNK_PIXELS * 3) {
        let source = &mut scratch[..chunk.len()];
        source.copy_from_slice(chunk);
        if transform.transform(source, chunk).is_err() {
            return;
        }
    }
}

fn source_profile(profile: &Profile) -> Option<ColorProfile> {
    match profile {
        Profile::Icc(icc) => ColorProfile::new_from_slice(icc)
            .ok()
            .filter(|profile| profile.color_space == DataColorSpace::Rgb),
        Profile::Cicp {
            primaries,
            transfer,
        } => {
            let cicp = CicpProfile {
                color_primaries: CicpColorPrimaries::try_from(*primaries).ok()?,
                transfer_characteristics: TransferCharacteristics::try_from(*transfer).ok()?,
                // Applies to YCbCr, which the decoder has already turned into RGB.
                matrix_coefficients: MatrixCoefficients::Identity,
                full_range: true,
            };
            Some(ColorProfile::new_from_cicp(cicp))
        }
    }
}

/// Whether the transform changes no colour by more than a rounding step: most cameras and
/// Android phones embed an sRGB profile, and running every pixel through it would only cost.
fn is_identity(transform: &Transform8BitExecutor) -> bool {
    const LEVELS: [u8; 6] = [0, 51, 102, 153, 204, 255];
    let probe: Vec<u8> = LEVELS
        .iter()
        .flat_map(|&r| {
            LEVELS
                .iter()
                .flat_map(move |&g| LEVELS.iter().flat_map(move |&b| [r, g, b]))
        })
        .collect();
    let mut converted = vec![0; probe.len()];
    transform.transform(&probe, &mut converted).is_ok()
        && probe
            .iter()
            .zip(&converted)
            .all(|(before, after)| before.abs_diff(*after) <= 1)
}
