package recording

import (
	"time"

	"roomrec/recording/flv"
	"roomrec/recording/mp4"
)

// Container is the file format of recordings.
type Container string

const (
	ContainerAuto Container = "auto" // H.264 into .flv, HEVC into .mp4: what ffmpeg 5.1 reads
	ContainerFLV  Container = "flv"  // everything in .flv; HEVC as codec id 12, as BililiveRecorder writes it
	ContainerMP4  Container = "mp4"  // everything in fragmented .mp4
)

// For returns the concrete container (FLV or MP4) a file whose first tag
// is first goes into. Auto picks MP4 for HEVC only: ffmpeg before 8.0
// cannot read HEVC in FLV (codec id 12), and H.264 in FLV is what every
// tool around Bilibili recordings expects.
func (c Container) For(first *flv.Tag) Container {
	if c != ContainerAuto {
		return c
	}
	if first != nil && first.Type == flv.TagVideo && flv.VideoCodec(first.Data) == flv.CodecHEVC {
		return ContainerMP4
	}
	return ContainerFLV
}

// ext is the file extension of a concrete container.
func (c Container) ext() string {
	if c == ContainerMP4 {
		return ".mp4"
	}
	return ".flv"
}

// newWriter returns the writer of a concrete container over f.
func (c Container) newWriter(f File) mediaWriter {
	if c == ContainerMP4 {
		return mp4.NewFileWriter(f, f)
	}
	return flv.NewFileWriter(f, f)
}

// mediaWriter writes one video file in its container from the repaired
// tags: flv.FileWriter and mp4.FileWriter. Writes are buffered; Flush
// writes what is buffered and whole (FLV tags; an MP4 fragment waits for
// the keyframe that ends it); Complete is where the last whole unit (tag,
// fragment) on disk ends, where a file is cut after a failed write.
type mediaWriter interface {
	WriteHeader() error
	WriteTag(t *flv.Tag) error
	Flush() error
	Written() int64
	Complete() int64
	Duration() time.Duration
	Finish() (flv.FileStats, error)
}
