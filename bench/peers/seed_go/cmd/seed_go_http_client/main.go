// Command seed_go_http_client is the seed's /grpc/insert hop: an HTTP server that turns each
// POST /grpc/insert into a Cast call on seed_go_grpc over one shared client connection.
//
//	seed_go_http_client --listen 127.0.0.1:PORT --upstream 127.0.0.1:GRPCPORT
package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/connectivity"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

	"votes/bench/seed_go/internal/vote"
	"votes/bench/seed_go/internal/votespb"
)

const (
	program      = "seed_go_http_client"
	bodyMaxBytes = 1 << 20 // docs/contract.md: an HTTP body at most 1 MiB
	// callTimeout covers the server's Kafka delivery timeout (5 s) and its slack.
	callTimeout = 10 * time.Second
)

type options struct {
	listen         string
	upstream       string
	startupTimeout time.Duration
}

func parseFlags(args []string) (options, error) {
	flags := flag.NewFlagSet(program, flag.ContinueOnError)
	listen := flags.String("listen", "", "host:port to serve HTTP on (required)")
	upstream := flags.String("upstream", "", "host:port of seed_go_grpc (required)")
	startupTimeout := flags.Duration("startup-timeout", 15*time.Second,
		"how long to wait for the upstream to accept a connection at start")
	if err := flags.Parse(args); err != nil {
		return options{}, err
	}
	if flags.NArg() > 0 {
		return options{}, fmt.Errorf("unexpected arguments: %q", flags.Args())
	}
	if _, _, err := net.SplitHostPort(*listen); err != nil {
		return options{}, fmt.Errorf("--listen %q is not host:port: %v", *listen, err)
	}
	if _, _, err := net.SplitHostPort(*upstream); err != nil {
		return options{}, fmt.Errorf("--upstream %q is not host:port: %v", *upstream, err)
	}
	if *startupTimeout <= 0 {
		return options{}, errors.New("--startup-timeout must be > 0")
	}
	return options{*listen, *upstream, *startupTimeout}, nil
}

type handler struct {
	conn *grpc.ClientConn
	stub votespb.VoteServiceClient
}

func writeJSON(w http.ResponseWriter, code int, body any) {
	w.Header().Set("Content-Type", "application/json")
	if code == http.StatusServiceUnavailable {
		w.Header().Set("Retry-After", "1")
	}
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(body)
}

func problem(w http.ResponseWriter, code int, detail string) {
	writeJSON(w, code, map[string]string{"detail": detail})
}

// knownFields: a vote has these and no others (votes.Vote forbids extra fields).
var knownFields = map[string]bool{"name": true, "album": true, "year": true, "rank": true, "vote_id": true}

// parseVote reads the seed's all-strings JSON (year and rank may also be integers) into a Vote
// message, checking types only: the gRPC server validates the values.
func parseVote(body []byte) (*votespb.Vote, vote.Problems) {
	var fields map[string]json.RawMessage
	decoder := json.NewDecoder(bytes.NewReader(body))
	if err := decoder.Decode(&fields); err != nil || fields == nil {
		return nil, vote.Problems{"body: must be a JSON object (" + describeJSONError(err) + ")"}
	}
	if decoder.More() {
		return nil, vote.Problems{"body: must hold exactly one JSON object"}
	}
	var problems vote.Problems
	for field := range fields {
		if !knownFields[field] {
			problems = append(problems, field+": Extra inputs are not permitted")
		}
	}
	message := &votespb.Vote{}
	for _, text := range []struct {
		field string
		into  *string
	}{{"name", &message.Name}, {"album", &message.Album}} {
		raw, present := fields[text.field]
		if !present {
			problems = append(problems, text.field+": Field required")
		} else if err := json.Unmarshal(raw, text.into); err != nil || raw[0] != '"' {
			problems = append(problems, text.field+": must be a string")
		}
	}
	for _, number := range []struct {
		field     string
		low, high int64
		into      *int32
	}{{"year", vote.YearMin, vote.YearMax, &message.Year}, {"rank", vote.RankMin, vote.RankMax, &message.Rank}} {
		raw, present := fields[number.field]
		if !present {
			problems = append(problems, number.field+": Field required")
			continue
		}
		value, why := wholeNumber(raw)
		if why == "" && (value < math.MinInt32 || value > math.MaxInt32) {
			why = vote.CheckRange(value, number.low, number.high) // int32 cannot carry it
		}
		if why != "" {
			problems = append(problems, number.field+": "+why)
			continue
		}
		*number.into = int32(value)
	}
	if raw, present := fields["vote_id"]; present && string(raw) != "null" {
		if err := json.Unmarshal(raw, &message.VoteId); err != nil || raw[0] != '"' {
			problems = append(problems, "vote_id: must be a string")
		} else if message.VoteId == "" {
			problems = append(problems, "vote_id: "+vote.VoteIDProblem) // "" would mean absent
		}
	}
	return message, problems
}

func describeJSONError(err error) string {
	if err == nil {
		return "got null"
	}
	return err.Error()
}

// wholeNumber is votes._whole_number: a JSON integer, or a string of 1-9 digits (trimmed).
func wholeNumber(raw json.RawMessage) (int64, string) {
	const why = "must be an integer or a string of digits"
	text := string(raw)
	if strings.HasPrefix(text, `"`) {
		var digits string
		if err := json.Unmarshal(raw, &digits); err != nil {
			return 0, why
		}
		digits = vote.TrimPython(digits)
		if len(digits) < 1 || len(digits) > 9 || strings.Trim(digits, "0123456789") != "" {
			return 0, why
		}
		value, _ := strconv.ParseInt(digits, 10, 64)
		return value, ""
	}
	if strings.ContainsAny(text, ".eE") || text == "true" || text == "false" || text == "null" {
		return 0, why
	}
	value, err := strconv.ParseInt(text, 10, 64)
	if errors.Is(err, strconv.ErrRange) { // a huge integer: out of range, not of the wrong type
		if strings.HasPrefix(text, "-") {
			return math.MinInt64, ""
		}
		return math.MaxInt64, ""
	}
	if err != nil {
		return 0, why
	}
	return value, ""
}

func (h *handler) insert(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, bodyMaxBytes))
	if err != nil {
		var tooLarge *http.MaxBytesError
		if errors.As(err, &tooLarge) {
			problem(w, http.StatusRequestEntityTooLarge, "body larger than 1 MiB")
			return
		}
		problem(w, http.StatusBadRequest, "could not read the body: "+err.Error())
		return
	}
	message, problems := parseVote(body)
	if problems != nil {
		problem(w, http.StatusUnprocessableEntity, problems.Error())
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), callTimeout)
	defer cancel()
	reply, err := h.stub.Cast(ctx, message)
	if err != nil {
		answer := status.Convert(err)
		if answer.Code() == codes.InvalidArgument {
			problem(w, http.StatusUnprocessableEntity, answer.Message())
			return
		}
		problem(w, http.StatusServiceUnavailable, fmt.Sprintf("upstream %s: %s", answer.Code(), answer.Message()))
		return
	}
	writeJSON(w, http.StatusAccepted, map[string]string{"vote_id": reply.GetVoteId()})
}

func (h *handler) healthz(w http.ResponseWriter, _ *http.Request) {
	state := h.conn.GetState()
	if state == connectivity.TransientFailure || state == connectivity.Shutdown {
		writeJSON(w, http.StatusServiceUnavailable, map[string]string{"upstream": state.String()})
		return
	}
	writeJSON(w, http.StatusOK, map[string]string{"upstream": state.String()})
}

// waitReady connects to the upstream and waits until the connection is ready.
func waitReady(ctx context.Context, conn *grpc.ClientConn) error {
	conn.Connect()
	for {
		state := conn.GetState()
		if state == connectivity.Ready {
			return nil
		}
		if !conn.WaitForStateChange(ctx, state) {
			return fmt.Errorf("not ready (%s): %w", state, ctx.Err())
		}
	}
}

func run(opts options) error {
	conn, err := grpc.NewClient(opts.upstream, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return fmt.Errorf("upstream %s: %w", opts.upstream, err)
	}
	defer conn.Close()
	startup, cancel := context.WithTimeout(context.Background(), opts.startupTimeout)
	err = waitReady(startup, conn)
	cancel()
	if err != nil {
		return fmt.Errorf("upstream %s: %w", opts.upstream, err)
	}
	h := &handler{conn: conn, stub: votespb.NewVoteServiceClient(conn)}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /grpc/insert", h.insert)
	mux.HandleFunc("GET /healthz", h.healthz)
	listener, err := net.Listen("tcp", opts.listen)
	if err != nil {
		return fmt.Errorf("listen on %s: %w", opts.listen, err)
	}
	server := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second, IdleTimeout: 120 * time.Second}
	stopped := make(chan struct{})
	go func() {
		signals := make(chan os.Signal, 1)
		signal.Notify(signals, syscall.SIGTERM, syscall.SIGINT)
		<-signals
		shutdown, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = server.Shutdown(shutdown) // finishes requests in progress, bounded
		close(stopped)
	}()
	// os.Stdout is unbuffered: the line is out before the first request can arrive.
	fmt.Printf("%s listening on %s\n", program, listener.Addr())
	if err := server.Serve(listener); !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("serve: %w", err)
	}
	<-stopped
	return nil
}

func main() {
	opts, err := parseFlags(os.Args[1:])
	if errors.Is(err, flag.ErrHelp) {
		os.Exit(0)
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "%s: %v\n", program, err)
		os.Exit(2)
	}
	if err := run(opts); err != nil {
		fmt.Fprintf(os.Stderr, "%s: %v\n", program, err)
		os.Exit(1)
	}
}
