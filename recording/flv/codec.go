package flv

// Codec ids in the first byte of a video tag (low nibble) and sound
// formats in the first byte of an audio tag (high nibble).
const (
	CodecAVC  = 7  // H.264
	CodecHEVC = 12 // H.265: not in the FLV specification; Bilibili's CDNs (and BililiveRecorder) use 12
	SoundAAC  = 10
)

// VideoCodec returns the codec id of a video tag's data, or 0 for an empty one.
func VideoCodec(data []byte) byte {
	if len(data) == 0 {
		return 0
	}
	return data[0] & 0x0f
}
