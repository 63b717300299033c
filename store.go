package ubihooks

import (
	"context"
	"time"
)

// Store is the persistence contract every database adapter implements (SQLite, PostgreSQL).
// internal/storetest holds the conformance suite that defines its behaviour case by case.
//
// Conventions: lookups of a missing row return an *Error with ENOTFOUND; a unique-key
// violation returns ECONFLICT; IDs are assigned by callers (UUID strings); times are UTC and
// stored with at least microsecond precision. Methods that change several rows do so in one
// transaction.
type Store interface {
	// Close releases the database.
	Close() error
	// Ready reports whether the database answers and its schema is current (every
	// migration of this binary applied): EUNAVAILABLE with the reason when not. It must
	// be cheap: readiness probes call it often.
	Ready(ctx context.Context) error

	// CreateProject inserts a project; ECONFLICT when the name is taken.
	CreateProject(ctx context.Context, p *Project) error
	// GetProject finds a project by name.
	GetProject(ctx context.Context, name string) (*Project, error)
	// ListProjects lists the projects a token may use, by name.
	ListProjects(ctx context.Context, tokenID string) ([]*Project, error)
	// CreateToken stores a token and grants it access to its project.
	CreateToken(ctx context.Context, t *Token) error
	// GrantAccess lets a token use another project (the creator of a project gets access).
	GrantAccess(ctx context.Context, tokenID, projectID string) error
	// Authenticate returns the token with the given hash and whether it may use project
	// (by name). ENOTFOUND when no token has the hash. Revoked and expired tokens are
	// returned as they are: refusing them is the service's rule.
	Authenticate(ctx context.Context, hash []byte, project string) (tok *Token, allowed bool, err error)
	// ListTokens lists tokens, revoked ones included, by creation time then ID, each with the
	// names of the projects it may use; with a project ID, only the tokens that may use that
	// project. An unknown project lists nothing; it never fails with ENOTFOUND.
	ListTokens(ctx context.Context, projectID string) ([]*Token, error)
	// RevokeToken marks a token revoked at the given time; revoking it again keeps the first
	// time. ENOTFOUND when no token has the ID.
	RevokeToken(ctx context.Context, id string, at time.Time) error
	// TouchToken records that a token was used at the given time, unless a later use is
	// already recorded. An unknown ID is not an error: the use of a token that is gone is
	// not worth failing a call for.
	TouchToken(ctx context.Context, id string, at time.Time) error

	// CreateSession stores a web UI session.
	CreateSession(ctx context.Context, s *Session) error
	// AuthenticateSession finds a session by hash with its token, and whether that token may
	// use project (false when project is ""). ENOTFOUND when there is no such session;
	// expiry is the caller's to check.
	AuthenticateSession(ctx context.Context, hash []byte, project string) (*Session, *Token, bool, error)
	// TouchSession moves a session's idle expiry forward to idle (never back).
	TouchSession(ctx context.Context, hash []byte, idle time.Time) error
	// DeleteSession removes a session (signing out); a missing one is not an error.
	DeleteSession(ctx context.Context, hash []byte) error
	// DeleteExpiredSessions removes the sessions whose idle or absolute expiry is at or
	// before now, and the sessions of revoked tokens. It returns how many it removed.
	DeleteExpiredSessions(ctx context.Context, now time.Time) (int, error)

	// CreateObject inserts a deployment or pipeline; ECONFLICT when its name is taken.
	CreateObject(ctx context.Context, o *Object) error
	// GetObject finds a deployment or pipeline by project, type and name.
	GetObject(ctx context.Context, projectID string, t ObjectType, name string) (*Object, error)
	// ListObjects lists a project's objects of one type, by name.
	ListObjects(ctx context.Context, projectID string, t ObjectType) ([]*Object, error)
	// UpdateObject writes the name, description, labels and default version (by name; the
	// version must exist, else ENOTFOUND) of o, found by o.ID.
	UpdateObject(ctx context.Context, o *Object) error
	// DeleteObject deletes an object with its versions, webhooks and requests.
	DeleteObject(ctx context.Context, projectID string, t ObjectType, name string) error

	// CreateVersion inserts a version; the first version of an object becomes its default,
	// in the same transaction. ECONFLICT when the name is taken.
	CreateVersion(ctx context.Context, v *Version) error
	// GetVersion finds a version of an object by name.
	GetVersion(ctx context.Context, objectID, name string) (*Version, error)
	// ListVersions lists an object's versions by name.
	ListVersions(ctx context.Context, objectID string) ([]*Version, error)
	// UpdateVersion writes the mutable fields of v (description, labels, environment,
	// backend, concurrency, pipeline spec), found by v.ID.
	UpdateVersion(ctx context.Context, v *Version) error
	// DeleteVersion deletes a version and the webhooks bound to it. Deleting the default
	// version leaves the object without one.
	DeleteVersion(ctx context.Context, objectID, name string) error

	// CreateWebhook inserts a webhook; ECONFLICT when the name is taken in the project.
	CreateWebhook(ctx context.Context, w *Webhook) error
	// GetWebhook finds a webhook by project and name.
	GetWebhook(ctx context.Context, projectID, name string) (*Webhook, error)
	// ListWebhooks lists a project's webhooks that match f, by name.
	ListWebhooks(ctx context.Context, projectID string, f WebhookFilter) ([]*Webhook, error)
	// UpdateWebhook writes every mutable field of w, found by w.ID; ECONFLICT on a taken name.
	UpdateWebhook(ctx context.Context, w *Webhook) error
	// DeleteWebhook deletes a webhook and its delivery history.
	DeleteWebhook(ctx context.Context, projectID, name string) error

	// SetDispatcher makes d the taker of new deliveries (nil: every delivery waits for a
	// claim). From then on, every transaction that creates deliveries (EmitEvents,
	// TransitionRequest, ClaimRequests) asks d for a place per delivery (Take, by host):
	// deliveries with a place are written leased to d (status sending, owner and lease from
	// d.Lease) and handed to d.Dispatch after the commit, with their event; the rest stay
	// pending for claims. A transaction that does not commit gives its places back
	// (Return). Call it before the store is shared.
	SetDispatcher(d Dispatcher)
	// Subscribe calls fn each time a commit made work of a channel due (new or rescued
	// deliveries or requests), until ctx ends, so that idle workers wake at once instead
	// of at their next poll. On a database shared by replicas this includes their
	// commits. fn must not block. Wake-ups are hints: a lost one delays work until the
	// next poll, it never loses work.
	Subscribe(ctx context.Context, fn func(Channel))

	// EmitEvents records events and, in the same transaction, creates one pending delivery
	// per matching enabled webhook: same project, object and event type, and either the
	// webhook's version is the event's version, or the webhook has no version and the event's
	// version is the object's default at this moment (the store sets Event.DefaultVersion).
	// A matching webhook that ubihooks disabled (Webhook.AutoDisabled) gets a parked
	// delivery instead; one that a user disabled gets none.
	// Events are keyed by ID and deliveries by (event, webhook): emitting again is a no-op.
	// It returns the number of deliveries created (parked ones included).
	EmitEvents(ctx context.Context, events []*Event, now time.Time) (int, error)

	// CreateWebhookTest records a test, its dummy event and its one delivery together.
	CreateWebhookTest(ctx context.Context, t *WebhookTest, e *Event, d *Delivery) error
	// GetWebhookTest finds a test by project and ID.
	GetWebhookTest(ctx context.Context, projectID, id string) (*WebhookTest, error)
	// ListWebhookTestAttempts lists the attempts of a test's delivery, by number: none
	// while it waits for its first, and none for an unknown test or another project's
	// (never ENOTFOUND: GetWebhookTest tells whether the test exists).
	ListWebhookTestAttempts(ctx context.Context, projectID, testID string) ([]*Attempt, error)

	// ClaimDeliveries leases up to c.Limit pending deliveries that are due at c.Now, oldest
	// first, to c.Owner until c.Now+c.Lease, and returns them with their events. With
	// c.Host, only deliveries to that host are claimed (an engine gives a receiver that
	// answers nothing just the slots it has free, in claims of its own, so that the main
	// claims never bring in a backlog that must be handed back); otherwise deliveries to the
	// hosts in c.ExcludeHosts are skipped (their senders are saturated). A store may give
	// each host with due deliveries a fair share of the limit (oldest first within each,
	// the oldest of all those kept), so that one host's backlog does not hold back the
	// new deliveries of others; a host alone may take the whole limit. Two concurrent
	// claims never return the same delivery.
	ClaimDeliveries(ctx context.Context, c DeliveryClaim) ([]*Delivery, error)
	// DeferDeliveries moves the pending deliveries to host that are due at now to until,
	// keeping their order. An engine whose sends to host are saturated calls it, so that a
	// receiver that cannot keep up does not leave a backlog that every claim must skip.
	DeferDeliveries(ctx context.Context, host string, until, now time.Time) (int, error)
	// RecordOutcomes stores each outcome's attempt and, when the delivery is still leased
	// by outcome.Owner, its new state. A final outcome of a test delivery sets the test's
	// status. Each outcome with a WebhookID extends or ends that webhook's run of failures
	// (Webhook.FailingSince, ConsecutiveFailures: a success ends it), and a retry of a
	// webhook that ubihooks disabled is parked instead of pending. All outcomes are written
	// in one transaction.
	RecordOutcomes(ctx context.Context, outcomes []Outcome, now time.Time) error
	// ReleaseDeliveries returns leased deliveries of owner to pending without an attempt
	// (a graceful shutdown that could not finish them).
	ReleaseDeliveries(ctx context.Context, owner string, ids []string, now time.Time) error
	// RescueDeliveries returns deliveries whose lease expired before now to pending.
	RescueDeliveries(ctx context.Context, now time.Time) (int, error)
	// NextDeliveryDue returns the earliest next_attempt_at of a pending delivery (zero if none).
	NextDeliveryDue(ctx context.Context) (time.Time, error)
	// DeliveryQueue counts, for monitoring, the pending deliveries due at now, the
	// deliveries not finished (pending or sending), the parked ones, and finds the oldest
	// due one. Each
	// count stops at limit (EINVALID unless positive), so that a scrape stays cheap
	// whatever the backlog; every part reads only the pending, sending and parked rows' indexes.
	DeliveryQueue(ctx context.Context, now time.Time, limit int) (DeliveryQueue, error)

	// ListDeliveries lists the deliveries that match f with their events, newest first by
	// (created_at, id), at most f.Limit (EINVALID unless positive). Webhook tests'
	// deliveries are never listed. EINVALID when f.Before names no delivery of the
	// project (a page cannot go on from a delivery that expired meanwhile).
	ListDeliveries(ctx context.Context, f DeliveryFilter) ([]*Delivery, error)
	// GetDelivery finds a delivery of a project with its event and attempts.
	GetDelivery(ctx context.Context, projectID, id string) (*Delivery, []*Attempt, error)
	// Redeliver makes a finished or parked delivery pending again at now (same event);
	// ECONFLICT when it is still pending or sending.
	Redeliver(ctx context.Context, projectID, id string, now time.Time) error
	// ApplyWebhookHealth applies p at now to every webhook and returns the changes, each
	// made by exactly one caller (replicas may call it at once), oldest webhook first:
	//   - WebhookFailing: an enabled webhook whose run of failures reached p.FailingAfter,
	//     not reported failing or disabled since its last success;
	//   - WebhookDisabled: an enabled webhook whose run began at or before now−p.DisableAfter
	//     and counts at least p.MinFailures is disabled with p.DisabledReason and DisabledAt
	//     now, and its pending deliveries are parked, in the same transaction;
	//   - WebhookRecovered: an enabled webhook reported failing or disabled with an attempt
	//     that succeeded since that report (a run that goes on after it is reported again).
	// EINVALID when p does not validate.
	ApplyWebhookHealth(ctx context.Context, p WebhookHealthPolicy, now time.Time) ([]*WebhookHealthChange, error)

	// RedeliverMany makes up to f.Limit finished deliveries that match f pending again at
	// now, oldest first, exactly as Redeliver does each (same event, retry schedule
	// restarted), in one transaction, and wakes the engines as Redeliver does. It returns
	// how many it changed, and whether deliveries that match f are left (the caller calls
	// again). With f.DryRun it changes nothing and returns how many match (all of them,
	// not just f.Limit) and whether that is more than f.Limit. EINVALID unless f.Status
	// is succeeded, failed or parked and f.Limit positive: pending and sending deliveries
	// are never touched.
	RedeliverMany(ctx context.Context, f RedeliverFilter, now time.Time) (int, bool, error)

	// WebhookStats sums up, for each webhook of a project (only the one named webhookName
	// unless it is ""), the deliveries created at or after since and their attempts, as
	// WebhookStats describes, in one statement whatever the number of webhooks: one entry
	// per webhook, ordered by name (bytewise), webhooks without deliveries included; an
	// unknown name gives none (never ENOTFOUND). Buckets holds the hours since + k hours
	// (k ≥ 0) in which deliveries that have succeeded or failed were created, oldest
	// first, only those with any: StatsBuckets regroups them into a window's buckets.
	WebhookStats(ctx context.Context, projectID string, since time.Time, webhookName string) ([]*WebhookStats, error)

	// DeleteExpired removes, in batches of at most batch rows, the deliveries (with their
	// attempts) of events whose deliveries all finished before before, events without
	// deliveries, and finished tests and requests older than before. It returns the number
	// of rows removed (attempts not counted).
	DeleteExpired(ctx context.Context, before time.Time, batch int) (int, error)

	// ListSigningKeys returns every signing key, newest first.
	ListSigningKeys(ctx context.Context) ([]*SigningKey, error)
	// AddSigningKey makes k the active key. With rotate, the previous active key is retired
	// at k.CreatedAt; without it, ECONFLICT means another process created an active key first.
	AddSigningKey(ctx context.Context, k *SigningKey, rotate bool) error
	// PruneSigningKeys deletes keys retired before `before`.
	PruneSigningKeys(ctx context.Context, before time.Time) error

	RequestStore
}

// Dispatcher takes new deliveries as they are emitted (see Store.SetDispatcher), so that
// they need neither a claim nor a read of what was claimed. The delivery engine of the
// process is the dispatcher.
type Dispatcher interface {
	// Lease returns the owner dispatched deliveries are leased to, and for how long.
	Lease() (owner string, lease time.Duration)
	// Take reserves a place for one delivery to host, if there is one. It is called
	// inside a transaction and must not block.
	Take(host string) bool
	// Return gives back places taken for deliveries that were not made after all (one
	// host per place).
	Return(hosts []string)
	// Dispatch hands over deliveries, durable and leased to the dispatcher, for which
	// places were taken.
	Dispatch(ds []*Delivery)
}

// Channel names a kind of work that a commit can make due (see Store.Subscribe).
type Channel string

// Wake-up channels.
const (
	ChannelDeliveries Channel = "ubihooks_deliveries"
	ChannelRequests   Channel = "ubihooks_requests"
)

// RequestStore is the part of the store contract that runs requests.
type RequestStore interface {
	// CreateRequests inserts requests (all pending) in one transaction.
	CreateRequests(ctx context.Context, rs []*Request) error
	// GetRequest finds a request by project and ID.
	GetRequest(ctx context.Context, projectID, id string) (*Request, error)
	// ListRequests lists requests matching f, newest first.
	ListRequests(ctx context.Context, f RequestFilter) ([]*Request, error)
	// TransitionRequest moves a request from t.From to t.To (compare-and-set: ECONFLICT when
	// the request is no longer in t.From), writes the result fields, and emits the events of
	// the transition (t.Events of the request as it was) in the same transaction (see
	// EmitEvents). It returns the request after the transition and the deliveries created.
	TransitionRequest(ctx context.Context, t RequestTransition) (*Request, int, error)
	// ClaimRequests leases up to c.Limit pending top-level requests, oldest first, moving
	// them to processing and emitting the started events of each (RequestTransition.Events
	// of pending → processing at c.Now), in the same transaction. Without c.External it claims requests of pipelines and of deployment
	// versions with a backend URL; with it, requests of c.VersionID (an external runtime).
	ClaimRequests(ctx context.Context, c RequestClaim) ([]*Request, error)
	// RescueRequests returns processing requests whose lease expired to pending.
	RescueRequests(ctx context.Context, now time.Time) (int, error)
	// ReleaseRequests returns owner's processing requests among ids to pending without
	// counting an attempt (a graceful shutdown that did not start them, or cut their run
	// before it had a result): the lease is cleared and the attempt counted by the claim is
	// taken back, and so is started_at when that claim was the request's first (it set
	// started_at; a request claimed before keeps the start time of its first claim, as a
	// rescued one does). Requests no longer processing under owner's lease (finished,
	// cancelled, rescued, claimed by another owner) and unknown ids are left alone; it
	// never fails with ENOTFOUND or ECONFLICT. now is the time of the release (the
	// requests record none of it today).
	ReleaseRequests(ctx context.Context, owner string, ids []string, now time.Time) error
	// ExtendRequestLeases moves the lease of owner's processing requests to until, for
	// requests that run longer than one lease. It returns how many were extended.
	ExtendRequestLeases(ctx context.Context, owner string, ids []string, until time.Time) (int, error)
}

// DeliveryClaim describes a claim of due deliveries (see Store.ClaimDeliveries).
type DeliveryClaim struct {
	Owner string
	Limit int
	Lease time.Duration
	Now   time.Time
	// Host, when set, claims only deliveries to this authority ("host:port").
	Host string
	// ExcludeHosts are authorities whose deliveries a claim without Host skips.
	ExcludeHosts []string
}

// RequestFilter selects requests.
type RequestFilter struct {
	ProjectID string
	ObjectID  string
	VersionID string // optional
	Status    RequestStatus
	ParentID  string
	Limit     int
	Offset    int
}

// RequestTransition describes one status change of a request.
type RequestTransition struct {
	ProjectID    string
	RequestID    string
	From         []RequestStatus
	To           RequestStatus
	Result       []byte
	ErrorMessage string
	Owner        string // when set, the request must still be leased by Owner
	Now          time.Time
}

// RequestClaim describes a claim of pending requests.
type RequestClaim struct {
	Owner     string
	Limit     int
	Lease     time.Duration
	Now       time.Time
	VersionID string // claim only this version's requests (external runtimes)
	External  bool   // claim requests of versions without a backend
	// ExcludeVersions are versions whose concurrency limit is reached in this process.
	ExcludeVersions []string
}

// DeliveryQueue is a snapshot of the deliveries not yet finished, for monitoring.
type DeliveryQueue struct {
	// Due counts the pending deliveries whose next attempt is due (at most the limit).
	Due int
	// Unfinished counts the pending and the sending deliveries (at most the limit).
	Unfinished int
	// OldestDue is when the longest-waiting due delivery became due (zero when none is due).
	OldestDue time.Time
	// Parked counts the parked deliveries (at most the limit).
	Parked int
}
