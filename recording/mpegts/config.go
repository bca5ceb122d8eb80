package mpegts

import (
	"encoding/binary"
	"errors"

	"github.com/bluenviron/mediacommon/v2/pkg/codecs/h264"
	"github.com/bluenviron/mediacommon/v2/pkg/codecs/h265"
)

// errParameterSet is returned for a parameter set too short or too long to
// go into a decoder configuration record.
var errParameterSet = errors.New("unusable parameter set")

// avcConfig builds the AVCDecoderConfigurationRecord (ISO/IEC 14496-15
// §5.3.3.1, "avcC") that an FLV AVC sequence header carries, from one SPS
// and one PPS, each a NAL unit without start code. NAL units in the frames
// that follow are prefixed with 4-byte lengths.
func avcConfig(sps, pps []byte) ([]byte, error) {
	if len(sps) < 4 || len(sps) > 0xffff || len(pps) < 1 || len(pps) > 0xffff {
		return nil, errParameterSet
	}
	b := make([]byte, 0, 11+len(sps)+len(pps)+4)
	b = append(b,
		1,      // configurationVersion
		sps[1], // AVCProfileIndication: profile_idc
		sps[2], // profile_compatibility: the constraint_set flags
		sps[3], // AVCLevelIndication: level_idc
		0xfc|3, // 6 reserved bits, lengthSizeMinusOne = 3
		0xe0|1, // 3 reserved bits, numOfSequenceParameterSets = 1
	)
	b = binary.BigEndian.AppendUint16(b, uint16(len(sps)))
	b = append(b, sps...)
	b = append(b, 1) // numOfPictureParameterSets
	b = binary.BigEndian.AppendUint16(b, uint16(len(pps)))
	b = append(b, pps...)
	// The High profiles add chroma format and bit depths (§5.3.3.1.2),
	// which players decoding 4:2:2 or 10-bit need; ffmpeg writes them too.
	switch sps[1] {
	case 100, 110, 122, 144:
		var s h264.SPS
		if s.Unmarshal(sps) == nil {
			b = append(b,
				0xfc|byte(s.ChromaFormatIdc&3),      // 6 reserved bits, chroma_format
				0xf8|byte(s.BitDepthLumaMinus8&7),   // 5 reserved bits, bit_depth_luma_minus8
				0xf8|byte(s.BitDepthChromaMinus8&7), // 5 reserved bits, bit_depth_chroma_minus8
				0,                                   // numOfSequenceParameterSetExt
			)
		}
	}
	return b, nil
}

// hevcConfig builds the HEVCDecoderConfigurationRecord (ISO/IEC 14496-15
// §8.3.3.1, "hvcC") that an FLV HEVC sequence header carries, from one VPS,
// SPS and PPS, each a NAL unit without start code. NAL units in the frames
// that follow are prefixed with 4-byte lengths.
func hevcConfig(vps, sps, pps []byte) ([]byte, error) {
	for _, n := range [][]byte{vps, sps, pps} {
		if len(n) < 3 || len(n) > 0xffff {
			return nil, errParameterSet
		}
	}
	// The record repeats the SPS's profile_tier_level, which starts right
	// after the 2-byte NAL header and one byte of
	// sps_video_parameter_set_id (4 bits), sps_max_sub_layers_minus1 (3)
	// and sps_temporal_id_nesting_flag (1). It is read from the RBSP: an
	// emulation prevention byte can sit among the compatibility flags.
	rbsp := h264.EmulationPreventionRemove(sps[:min(len(sps), 32)])
	if len(rbsp) < 15 {
		return nil, errParameterSet
	}
	subLayersMinus1 := rbsp[2] >> 1 & 7
	nested := rbsp[2] & 1
	chroma, lumaMinus8, chromaMinus8 := uint32(1), uint32(0), uint32(0) // 4:2:0, 8 bits
	var s h265.SPS
	if s.Unmarshal(sps) == nil {
		chroma, lumaMinus8, chromaMinus8 = s.ChromaFormatIdc, s.BitDepthLumaMinus8, s.BitDepthChromaMinus8
	}
	b := make([]byte, 0, 23+3*5+len(vps)+len(sps)+len(pps))
	b = append(b, 1) // configurationVersion
	// general_profile_space (2 bits), general_tier_flag (1),
	// general_profile_idc (5), general_profile_compatibility_flags (32),
	// general_constraint_indicator_flags (48), general_level_idc (8): the
	// same 12 bytes as in the SPS.
	b = append(b, rbsp[3:15]...)
	b = append(b,
		0xf0, 0x00, // 4 reserved bits, min_spatial_segmentation_idc = 0 (unknown)
		0xfc|0, // 6 reserved bits, parallelismType = 0 (unknown)
		0xfc|byte(chroma&3),
		0xf8|byte(lumaMinus8&7),
		0xf8|byte(chromaMinus8&7),
		0, 0, // avgFrameRate = 0 (unspecified)
		// constantFrameRate = 0 (2 bits), numTemporalLayers (3),
		// temporalIdNested (1), lengthSizeMinusOne = 3 (2)
		(subLayersMinus1+1)&7<<3|nested<<2|3,
		3, // numOfArrays: VPS, SPS, PPS
	)
	for _, a := range []struct {
		typ  h265.NALUType
		nalu []byte
	}{{h265.NALUType_VPS_NUT, vps}, {h265.NALUType_SPS_NUT, sps}, {h265.NALUType_PPS_NUT, pps}} {
		b = append(b, 0x80|byte(a.typ)) // array_completeness = 1, reserved 0, NAL_unit_type
		b = binary.BigEndian.AppendUint16(b, 1)
		b = binary.BigEndian.AppendUint16(b, uint16(len(a.nalu)))
		b = append(b, a.nalu...)
	}
	return b, nil
}
