package mp4

import (
	"encoding/binary"

	"github.com/bluenviron/mediacommon/v2/pkg/codecs/h264"
	"github.com/bluenviron/mediacommon/v2/pkg/codecs/h265"
	"github.com/bluenviron/mediacommon/v2/pkg/codecs/mpeg4audio"
)

// timescale is the clock of every track this package writes. FLV times are
// whole ms, so any other clock only multiplies them: 1000 keeps tfdt,
// durations and composition offsets exactly what the tags said, and a file
// read back gives the same timestamps. A 90 kHz video clock or the sample
// rate for audio would carry no more information than the ms they came
// from.
const timescale = 1000

// Track ids in the files this package writes.
const (
	videoTrackID = 1
	audioTrackID = 2
)

// initLayout is where the fields Finish rewrites sit in an init.
type initLayout struct {
	mvhdDuration, mehdDuration int
}

// appendInit appends ftyp and moov for a video track of codec (7 or 12)
// with the avcC or hvcC record vconf, and an AAC track with the
// AudioSpecificConfig aconf when aconf is not nil. The records go into the
// file as they came; width, height, rate and channels are read from them
// for the sample entries, which players show but do not decode with, so a
// record mediacommon cannot parse leaves them 0.
func appendInit(b []byte, codec byte, vconf, aconf []byte) ([]byte, initLayout) {
	var l initLayout
	b, ftyp := startBox(b, typeFtyp)
	b = append(b, "isom"...)
	b = appendU32(b, 0x200)
	b = append(b, "isomiso6mp41"...) // iso6: tfdt and trun of version 1
	b = endBox(b, ftyp)

	b, moov := startBox(b, typeMoov)
	b, mvhd := startFullBox(b, typeMvhd, 0, 0)
	b = appendU32(b, 0) // creation time
	b = appendU32(b, 0) // modification time
	b = appendU32(b, timescale)
	l.mvhdDuration = len(b)
	b = appendU32(b, 0)          // duration, set by Finish
	b = appendU32(b, 0x00010000) // rate 1.0
	b = appendU16(b, 0x0100)     // volume 1.0
	b = appendZeros(b, 10)
	b = appendMatrix(b)
	b = appendZeros(b, 24)
	b = appendU32(b, audioTrackID+1) // next track id
	b = endBox(b, mvhd)

	b = appendVideoTrak(b, codec, vconf)
	if aconf != nil {
		b = appendAudioTrak(b, aconf)
	}

	b, mvex := startBox(b, typeMvex)
	b, mehd := startFullBox(b, typeMehd, 0, 0)
	l.mehdDuration = len(b)
	b = appendU32(b, 0) // fragment duration, set by Finish
	b = endBox(b, mehd)
	for _, id := range []uint32{videoTrackID, audioTrackID} {
		if id == audioTrackID && aconf == nil {
			break
		}
		var trex int
		b, trex = startFullBox(b, typeTrex, 0, 0)
		b = appendU32(b, id)
		b = appendU32(b, 1) // sample description index
		b = appendZeros(b, 12)
		b = endBox(b, trex)
	}
	b = endBox(b, mvex)
	return endBox(b, moov), l
}

func appendTkhd(b []byte, id uint32, audio bool, width, height int) []byte {
	b, tkhd := startFullBox(b, typeTkhd, 0, 3) // enabled, in movie
	b = appendZeros(b, 8)                      // creation, modification
	b = appendU32(b, id)
	b = appendZeros(b, 4+4+8+2) // reserved, duration, reserved, layer
	if audio {
		b = appendU16(b, 1)      // alternate group
		b = appendU16(b, 0x0100) // volume
	} else {
		b = appendU16(b, 0)
		b = appendU16(b, 0)
	}
	b = appendU16(b, 0)
	b = appendMatrix(b)
	b = appendU32(b, uint32(width)<<16)
	b = appendU32(b, uint32(height)<<16)
	return endBox(b, tkhd)
}

func appendMdhdHdlr(b []byte, handler, name string) []byte {
	b, mdhd := startFullBox(b, typeMdhd, 0, 0)
	b = appendZeros(b, 8)
	b = appendU32(b, timescale)
	b = appendU32(b, 0)
	b = appendU16(b, 0x55c4) // "und"
	b = appendU16(b, 0)
	b = endBox(b, mdhd)
	b, hdlr := startFullBox(b, typeHdlr, 0, 0)
	b = appendU32(b, 0)
	b = append(b, handler...)
	b = appendZeros(b, 12)
	b = append(b, name...)
	b = append(b, 0)
	return endBox(b, hdlr)
}

// appendDinf appends the data reference saying the samples are in this file.
func appendDinf(b []byte) []byte {
	b, dinf := startBox(b, fourCC("dinf"))
	b, dref := startFullBox(b, fourCC("dref"), 0, 0)
	b = appendU32(b, 1)
	b, url := startFullBox(b, fourCC("url "), 0, 1)
	b = endBox(b, url)
	b = endBox(b, dref)
	return endBox(b, dinf)
}

// appendEmptyTables appends the sample tables a fragmented file leaves
// empty, after the stsd.
func appendEmptyTables(b []byte) []byte {
	for _, typ := range []string{"stts", "stsc", "stsz", "stco"} {
		var at int
		b, at = startFullBox(b, fourCC(typ), 0, 0)
		if typ == "stsz" {
			b = appendU32(b, 0) // sample size
		}
		b = appendU32(b, 0) // entry count
		b = endBox(b, at)
	}
	return b
}

func appendVideoTrak(b []byte, codec byte, conf []byte) []byte {
	width, height := videoSize(codec, conf)
	b, trak := startBox(b, typeTrak)
	b = appendTkhd(b, videoTrackID, false, width, height)
	b, mdia := startBox(b, typeMdia)
	b = appendMdhdHdlr(b, "vide", "VideoHandler")
	b, minf := startBox(b, typeMinf)
	b, vmhd := startFullBox(b, fourCC("vmhd"), 0, 1)
	b = appendZeros(b, 8)
	b = endBox(b, vmhd)
	b = appendDinf(b)
	b, stbl := startBox(b, typeStbl)
	b, stsd := startFullBox(b, typeStsd, 0, 0)
	b = appendU32(b, 1)
	entry, config := typeAvc1, typeAvcC
	if codec == codecHEVC {
		// hvc1, not hev1: Apple's players take no other. It promises the
		// parameter sets are in the hvcC; decoders also take the copies
		// an encoder repeats before keyframes.
		entry, config = typeHvc1, typeHvcC
	}
	b, se := startBox(b, entry)
	b = appendZeros(b, 6)
	b = appendU16(b, 1) // data reference index
	b = appendZeros(b, 16)
	b = appendU16(b, uint16(width))
	b = appendU16(b, uint16(height))
	b = appendU32(b, 0x00480000) // 72 dpi
	b = appendU32(b, 0x00480000)
	b = appendU32(b, 0)
	b = appendU16(b, 1) // frame count
	b = appendZeros(b, 32)
	b = appendU16(b, 0x0018) // depth
	b = appendU16(b, 0xffff)
	b, cb := startBox(b, config)
	b = append(b, conf...)
	b = endBox(b, cb)
	b = endBox(b, se)
	b = endBox(b, stsd)
	b = appendEmptyTables(b)
	b = endBox(b, stbl)
	b = endBox(b, minf)
	b = endBox(b, mdia)
	return endBox(b, trak)
}

func appendAudioTrak(b []byte, asc []byte) []byte {
	rate, channels := audioFormat(asc)
	b, trak := startBox(b, typeTrak)
	b = appendTkhd(b, audioTrackID, true, 0, 0)
	b, mdia := startBox(b, typeMdia)
	b = appendMdhdHdlr(b, "soun", "SoundHandler")
	b, minf := startBox(b, typeMinf)
	b, smhd := startFullBox(b, fourCC("smhd"), 0, 0)
	b = appendZeros(b, 4)
	b = endBox(b, smhd)
	b = appendDinf(b)
	b, stbl := startBox(b, typeStbl)
	b, stsd := startFullBox(b, typeStsd, 0, 0)
	b = appendU32(b, 1)
	b, se := startBox(b, typeMp4a)
	b = appendZeros(b, 6)
	b = appendU16(b, 1) // data reference index
	b = appendZeros(b, 8)
	b = appendU16(b, uint16(channels))
	b = appendU16(b, 16) // sample size
	b = appendZeros(b, 4)
	if rate < 1<<16 {
		b = appendU32(b, uint32(rate)<<16)
	} else {
		b = appendU32(b, 0) // does not fit 16.16; the AudioSpecificConfig says
	}
	b, esds := startFullBox(b, typeEsds, 0, 0)
	dsi := 1 + descriptorSize(len(asc)) // tag, size, body
	dcd := 1 + descriptorSize(13+dsi)
	sl := 3
	b = append(b, tagESDescriptor)
	b = appendDescriptorSize(b, 3+dcd+sl)
	b = appendU16(b, audioTrackID) // ES_ID
	b = append(b, 0)               // no dependence, URL or OCR
	b = append(b, tagDecoderConfig)
	b = appendDescriptorSize(b, 13+dsi)
	b = append(b, 0x40, 0x15) // MPEG-4 audio; audio stream, upstream 0, reserved 1
	b = appendZeros(b, 3+4+4) // buffer size, max and average bitrate: unknown
	b = append(b, tagDecoderSpecific)
	b = appendDescriptorSize(b, len(asc))
	b = append(b, asc...)
	b = append(b, tagSLConfigDescript, 1, 2) // predefined: MP4 files
	b = endBox(b, esds)
	b = endBox(b, se)
	b = endBox(b, stsd)
	b = appendEmptyTables(b)
	b = endBox(b, stbl)
	b = endBox(b, minf)
	b = endBox(b, mdia)
	return endBox(b, trak)
}

// descriptorSize is the size of a descriptor's size field and body: the
// field takes seven bits a byte.
func descriptorSize(n int) int {
	switch {
	case n < 1<<7:
		return 1 + n
	case n < 1<<14:
		return 2 + n
	case n < 1<<21:
		return 3 + n
	}
	return 4 + n
}

// appendDescriptorSize appends n as a descriptor size field, as short as
// it can be.
func appendDescriptorSize(b []byte, n int) []byte {
	for shift := (descriptorSize(n) - n - 1) * 7; shift > 0; shift -= 7 {
		b = append(b, byte(n>>shift)|0x80)
	}
	return append(b, byte(n&0x7f))
}

// videoSize reads the coded picture size from the first SPS of an avcC or
// hvcC record, or returns 0, 0.
func videoSize(codec byte, conf []byte) (width, height int) {
	sps := firstSPS(codec, conf)
	if sps == nil {
		return 0, 0
	}
	if codec == codecHEVC {
		var s h265.SPS
		if s.Unmarshal(sps) != nil {
			return 0, 0
		}
		return s.Width(), s.Height()
	}
	var s h264.SPS
	if s.Unmarshal(sps) != nil {
		return 0, 0
	}
	return s.Width(), s.Height()
}

// firstSPS returns the first sequence parameter set in an avcC
// (ISO/IEC 14496-15 5.3.3.1) or hvcC (8.3.3.1) record.
func firstSPS(codec byte, conf []byte) []byte {
	if codec == codecAVC {
		if len(conf) < 8 || conf[5]&0x1f == 0 {
			return nil
		}
		n := int(binary.BigEndian.Uint16(conf[6:]))
		if len(conf) < 8+n {
			return nil
		}
		return conf[8 : 8+n]
	}
	if len(conf) < 23 {
		return nil
	}
	b := conf[23:]
	for range conf[22] {
		if len(b) < 3 {
			return nil
		}
		typ, count := b[0]&0x3f, int(binary.BigEndian.Uint16(b[1:]))
		b = b[3:]
		for range count {
			if len(b) < 2 {
				return nil
			}
			n := int(binary.BigEndian.Uint16(b))
			if len(b) < 2+n {
				return nil
			}
			if typ == byte(h265.NALUType_SPS_NUT) {
				return b[2 : 2+n]
			}
			b = b[2+n:]
		}
	}
	return nil
}

// audioFormat reads the sample rate and channel count of an
// AudioSpecificConfig, with 44.1 kHz stereo for one mediacommon cannot read.
func audioFormat(asc []byte) (rate, channels int) {
	var c mpeg4audio.AudioSpecificConfig
	if c.Unmarshal(asc) != nil {
		return 44100, 2
	}
	channels = int(c.ChannelConfig)
	switch {
	case channels == 7:
		channels = 8
	case channels == 0 || channels > 7:
		channels = 2
	}
	return c.SampleRate, channels
}
