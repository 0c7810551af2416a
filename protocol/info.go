package protocol

// InfoPath is the HTTP path of the relay information document, [RelayInfo],
// served with GET as JSON. Like a Nostr relay's NIP-11 document, it lets a
// client or a person see what a relay is and which limits it enforces
// before connecting. It was added within version 1.
const InfoPath = "/v1/info"

// RelayInfo is the relay information document served at [InfoPath].
type RelayInfo struct {
	Software        string `json:"software"`         // "kintsugi-relay" for the reference relay
	Version         string `json:"version"`          // the software's version
	ProtocolVersion int    `json:"protocol_version"` // the newest version the relay speaks: [Version]
	Subprotocol     string `json:"subprotocol"`      // its subprotocol: [Subprotocol]
	// Subprotocols lists every subprotocol the relay accepts, newest
	// first. Added with version 2: a relay without it accepts
	// [SubprotocolV1] only.
	Subprotocols []string    `json:"subprotocols,omitempty"`
	RelayID      string      `json:"relay_id"` // the id the relay sends in [Hello]
	Limits       RelayLimits `json:"limits"`
}

// RelayLimits lists the limits a relay enforces. A zero number means the
// relay enforces no such limit.
type RelayLimits struct {
	MaxBlobSize      int     `json:"max_blob_size"`    // bytes
	MaxMessageSize   int     `json:"max_message_size"` // bytes, one WebSocket message after authentication
	MaxAuthMessage   int     `json:"max_auth_message"` // bytes, one WebSocket message before authentication
	MaxInvitePacket  int     `json:"max_invite_packet"`
	AuthTimeout      float64 `json:"auth_timeout_seconds"`            // from connecting to a valid auth
	PingInterval     float64 `json:"ping_interval_seconds"`           // a connection silent for twice this is closed
	InviteMaxTTL     float64 `json:"invite_max_ttl_seconds"`          // the longest an invite may stay valid
	RequestRate      float64 `json:"request_rate"`                    // requests per second, per connection, sustained
	RequestBurst     int     `json:"request_burst"`                   // requests a connection may send at once
	JournalPutRate   float64 `json:"journal_put_rate"`                // new blobs per second, per journal, sustained
	JournalPutBurst  int     `json:"journal_put_burst"`               // new blobs a journal may take at once
	JournalQuota     int64   `json:"journal_quota_bytes"`             // blob bytes one journal may hold
	MaxConnections   int     `json:"max_connections"`                 // open connections, in total
	MaxUnauthConns   int     `json:"max_unauthenticated_connections"` // open connections not yet authenticated; added within version 1
	MaxConnsPerAddr  int     `json:"max_connections_per_address"`
	MaxSubscriptions int     `json:"max_subscriptions_per_connection"`
}
