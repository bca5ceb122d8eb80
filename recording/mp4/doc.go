// Package mp4 reads and writes fragmented MP4 in terms of FLV tags, so that
// every source and container goes through the one repair pipeline of
// package flv: Demuxer turns HLS fMP4 segments into tags, FileWriter turns
// the repaired tags into a fragmented MP4 file, and ScanComplete finds
// where a file cut off by a crash should end.
//
// It works on byte slices, io.Writer and io.ReaderAt only; fetching,
// opening and naming belong to package recording.
//
// The boxes on the media path (moof, traf, trun, mdat) are read and
// written here, in one parser that Demuxer and ScanComplete share. On the
// fixtures mediacommon's fmp4.Parts.Unmarshal read 107 MB/s with about 20
// allocations a sample, refuses tfdt of version 0 and ignores tfhd base
// offsets; its Init.Marshal writes hev1 and rebuilds the avcC or hvcC from
// one SPS and PPS. mediacommon parses the SPS and the AudioSpecificConfig
// for the sample entries' picture size, rate and channels.
//
// What it does not do:
//   - edit lists: neither read nor written, as FLV has no place for them;
//     a B-frame stream's first picture is shown at its composition offset,
//     as in the FLV it came from;
//   - more than one video and one audio track (the first of each is used),
//     more than one sample entry, encrypted tracks, audio other than AAC,
//     video other than H.264 and H.265;
//   - sidx, mfra or any index: players find fragments by reading them, and
//     Finish rewrites only the durations in the init;
//   - samples of zero bytes, which are skipped both ways.
package mp4
