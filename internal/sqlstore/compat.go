package sqlstore

import (
	"context"

	"github.com/ubihooks/ubihooks"
)

// Wake-up channel names as strings.
//
// Deprecated: use ubihooks.ChannelDeliveries and ubihooks.ChannelRequests.
const (
	ChannelDeliveries = string(ubihooks.ChannelDeliveries)
	ChannelRequests   = string(ubihooks.ChannelRequests)
)

// OnCommit subscribes fn to the store's commits for the store's lifetime.
//
// Deprecated: use Subscribe.
func (s *Store) OnCommit(fn func(ctx context.Context, channel string)) {
	s.Subscribe(context.Background(), func(c ubihooks.Channel) { fn(context.Background(), string(c)) })
}
