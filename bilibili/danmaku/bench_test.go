package danmaku

import (
	"fmt"
	"strings"
	"testing"
)

// danmuBatch returns a brotli batch of n DANMU_MSG bodies with the full
// real layout, varying user and text as a busy room does.
func danmuBatch(b *testing.B, n int) []byte {
	b.Helper()
	var packets []Packet
	for i := range n {
		body := strings.Replace(danmuMsg, "弹幕内容", fmt.Sprintf("第%d条弹幕，主播加油！%s", i, strings.Repeat("哈", i%7)), 1)
		body = strings.Replace(body, "12345678", fmt.Sprint(10000000+i*7919), 1)
		packets = append(packets, Packet{Version: VersionJSON, Op: OpMessage, Body: []byte(body)})
	}
	frame, err := EncodeBatch(VersionBrotli, packets...)
	if err != nil {
		b.Fatal(err)
	}
	return frame
}

// BenchmarkDecodeDanmuBatch measures the whole receive path of a busy room:
// brotli batch → packets → cmd → typed Danmaku event.
func BenchmarkDecodeDanmuBatch(b *testing.B) {
	const perBatch = 20
	frame := danmuBatch(b, perBatch)
	var d Decoder
	msgs := 0
	b.SetBytes(int64(len(frame)))
	b.ReportAllocs()
	for b.Loop() {
		err := d.Decode(frame, func(p Packet) error {
			cmd, err := CmdOf(p.Body)
			if err != nil {
				return err
			}
			ev, err := parseCmd(cmd, p.Body)
			if err != nil {
				return err
			}
			if _, ok := ev.(Danmaku); !ok {
				return fmt.Errorf("got %T", ev)
			}
			msgs++
			return nil
		})
		if err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(msgs)/b.Elapsed().Seconds(), "msgs/s")
}

// BenchmarkSkipUnwanted measures messages nobody asked for: the cmd is read
// and the body is never parsed.
func BenchmarkSkipUnwanted(b *testing.B) {
	frame := danmuBatch(b, 20)
	var d Decoder
	msgs := 0
	for b.Loop() {
		d.Decode(frame, func(p Packet) error {
			if _, err := CmdOf(p.Body); err != nil {
				return err
			}
			msgs++
			return nil
		})
	}
	b.ReportMetric(float64(msgs)/b.Elapsed().Seconds(), "msgs/s")
}
