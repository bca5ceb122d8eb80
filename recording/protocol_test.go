package recording_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"testing"
	"time"

	"roomrec/bilibili"
	"roomrec/recording"
)

// fakeAPI is a Bilibili whose answers a test chooses.
type fakeAPI struct {
	roomInfo func() (bilibili.RoomInfo, error)
}

var _ recording.API = (*fakeAPI)(nil)

func (f *fakeAPI) ResolveRoom(context.Context, int64) (bilibili.RoomInit, error) {
	return bilibili.RoomInit{RoomID: 5440}, nil
}
func (f *fakeAPI) RoomInfo(context.Context, int64) (bilibili.RoomInfo, error) { return f.roomInfo() }
func (f *fakeAPI) PlayInfo(context.Context, int64, int) (bilibili.PlayInfo, error) {
	return bilibili.PlayInfo{}, bilibili.ErrNotLive
}
func (f *fakeAPI) DanmuInfo(context.Context, int64) (bilibili.DanmuInfo, error) {
	return bilibili.DanmuInfo{}, errors.New("no danmaku here")
}
func (f *fakeAPI) WebsocketHeader() http.Header { return http.Header{} }

func TestChangedAPIStopsTaskWithError(t *testing.T) {
	api := &fakeAPI{roomInfo: func() (bilibili.RoomInfo, error) {
		return bilibili.RoomInfo{}, fmt.Errorf("getInfoByRoom: %w: json: cannot unmarshal", bilibili.ErrProtocol)
	}}
	events := newEventLog()
	mgr := recording.NewManager(api, recording.Options{Dir: t.TempDir(), RetryBackoff: 10 * time.Millisecond, MaxBackoff: 20 * time.Millisecond}, events.add)
	defer mgr.Shutdown(context.Background())
	task, err := mgr.Acquire(context.Background(), 5440, true)
	if err != nil {
		t.Fatal(err)
	}
	select {
	case <-task.Done():
	case <-time.After(5 * time.Second):
		t.Fatal("task kept retrying an API it cannot read")
	}
	errs := ofType[recording.TaskError](events)
	if len(errs) != 1 || errs[0].Kind != recording.ErrorProtocol || errs[0].Recoverable {
		t.Errorf("TaskErrors = %+v, want one unrecoverable protocol error", errs)
	}
	if !errors.Is(task.Err(), bilibili.ErrProtocol) {
		t.Errorf("Err = %v, want ErrProtocol", task.Err())
	}
}
