// Package mp4 reads and writes fragmented MP4 in terms of FLV tags, so that
// every source and container goes through the one repair pipeline of
// package flv: Demuxer turns HLS fMP4 segments into tags, FileWriter turns
// the repaired tags into a fragmented MP4 file, and ScanComplete finds
// where a file cut off by a crash should end.
//
// It works on byte slices, io.Writer and io.ReaderAt only; fetching,
// opening and naming belong to package recording.
package mp4
