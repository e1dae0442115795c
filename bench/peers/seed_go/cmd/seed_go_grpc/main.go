// Command seed_go_grpc is the seed's Go gRPC server, rebuilt to our contract: votes.v1.VoteService
// Cast and CastBatch, validated as serve_app/domain/votes.py does, answered only once Kafka has
// acknowledged every record (acks=all, idempotent producer), records identical to ours.
//
//	seed_go_grpc --listen 127.0.0.1:PORT --bootstrap 127.0.0.1:9092 --topic TOPIC
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"net"
	"os"
	"os/signal"
	"regexp"
	"strings"
	"syscall"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"votes/bench/seed_go/internal/vote"
	"votes/bench/seed_go/internal/votespb"
)

const program = "seed_go_grpc"

// topicPattern is the topic rule of serve_app/settings.py.
var topicPattern = regexp.MustCompile(`^[A-Za-z0-9._-]{1,249}$`)

type options struct {
	listen          string
	bootstrap       []string
	topic           string
	deliveryTimeout time.Duration
	linger          time.Duration
	startupTimeout  time.Duration
}

func parseFlags(args []string) (options, error) {
	flags := flag.NewFlagSet(program, flag.ContinueOnError)
	listen := flags.String("listen", "", "host:port to serve gRPC on (required)")
	bootstrap := flags.String("bootstrap", "", "Kafka bootstrap servers, host:port[,host:port] (required)")
	topic := flags.String("topic", "", "Kafka topic to produce votes to (required)")
	deliveryTimeout := flags.Duration("delivery-timeout", 5*time.Second,
		"how long a record may wait for Kafka's ack before the call fails with UNAVAILABLE")
	linger := flags.Duration("linger", 2*time.Millisecond, "producer linger (batching delay)")
	startupTimeout := flags.Duration("startup-timeout", 15*time.Second,
		"how long to wait for Kafka's metadata at start")
	if err := flags.Parse(args); err != nil {
		return options{}, err
	}
	if flags.NArg() > 0 {
		return options{}, fmt.Errorf("unexpected arguments: %q", flags.Args())
	}
	if _, _, err := net.SplitHostPort(*listen); err != nil {
		return options{}, fmt.Errorf("--listen %q is not host:port: %v", *listen, err)
	}
	var brokers []string
	for _, broker := range strings.Split(*bootstrap, ",") {
		if broker = strings.TrimSpace(broker); broker != "" {
			if _, _, err := net.SplitHostPort(broker); err != nil {
				return options{}, fmt.Errorf("--bootstrap %q: %q is not host:port", *bootstrap, broker)
			}
			brokers = append(brokers, broker)
		}
	}
	if len(brokers) == 0 {
		return options{}, errors.New("--bootstrap is required (host:port[,host:port])")
	}
	if !topicPattern.MatchString(*topic) {
		return options{}, fmt.Errorf("--topic %q is not a Kafka topic name (1-249 of A-Za-z0-9._-)", *topic)
	}
	if *deliveryTimeout <= 0 || *linger < 0 || *startupTimeout <= 0 {
		return options{}, errors.New("--delivery-timeout and --startup-timeout must be > 0, --linger >= 0")
	}
	return options{*listen, brokers, *topic, *deliveryTimeout, *linger, *startupTimeout}, nil
}

// newProducer makes the producer with the guarantees of serve_app/ingress/producer.py's
// producer_config: acks=all, idempotent (franz-go's default), lz4, a short linger.
func newProducer(opts options) (*kgo.Client, error) {
	return kgo.NewClient(
		kgo.SeedBrokers(opts.bootstrap...),
		kgo.ClientID("votes-seed-go-grpc"),
		kgo.DefaultProduceTopic(opts.topic),
		kgo.RequiredAcks(kgo.AllISRAcks()),
		kgo.ProducerBatchCompression(kgo.Lz4Compression()),
		kgo.ProducerLinger(opts.linger),
		kgo.RecordDeliveryTimeout(opts.deliveryTimeout),
		kgo.ProduceRequestTimeout(min(opts.deliveryTimeout, 30*time.Second)),
	)
}

// checkTopic fails when Kafka does not answer, or answers that the topic is missing.
func checkTopic(ctx context.Context, client *kgo.Client, topic string) error {
	request := kmsg.NewPtrMetadataRequest()
	requested := kmsg.NewMetadataRequestTopic()
	requested.Topic = kmsg.StringPtr(topic)
	request.Topics = append(request.Topics, requested)
	request.AllowAutoTopicCreation = false
	response, err := request.RequestWith(ctx, client)
	if err != nil {
		return fmt.Errorf("kafka unreachable: %w", err)
	}
	for _, answered := range response.Topics {
		if err := kerr.ErrorForCode(answered.ErrorCode); err != nil {
			return fmt.Errorf("topic %q: %w", topic, err)
		}
	}
	return nil
}

type voteService struct {
	votespb.UnimplementedVoteServiceServer
	producer *kgo.Client
	// awaitTimeout: slack over the producer's own delivery timeout, whose error is the better answer.
	awaitTimeout time.Duration
}

func inputOf(message *votespb.Vote) vote.Input {
	return vote.Input{Name: message.GetName(), Album: message.GetAlbum(), Year: int64(message.GetYear()),
		Rank: int64(message.GetRank()), VoteID: message.GetVoteId()}
}

// send produces the votes and returns once Kafka acknowledged every one of them.
func (s *voteService) send(ctx context.Context, votes []vote.Vote) error {
	receivedAt := time.Now()
	headers := vote.Headers("grpc")
	recordHeaders := make([]kgo.RecordHeader, len(headers))
	for i, header := range headers {
		recordHeaders[i] = kgo.RecordHeader{Key: header.Key, Value: header.Value}
	}
	records := make([]*kgo.Record, len(votes))
	for i, v := range votes {
		key, value := vote.Encode(v, receivedAt, "grpc")
		records[i] = &kgo.Record{Key: key, Value: value, Headers: recordHeaders}
	}
	ctx, cancel := context.WithTimeout(ctx, s.awaitTimeout)
	defer cancel()
	if err := s.producer.ProduceSync(ctx, records...).FirstErr(); err != nil {
		return status.Errorf(codes.Unavailable, "Kafka did not take the record: %v", err)
	}
	return nil
}

func (s *voteService) Cast(ctx context.Context, request *votespb.Vote) (*votespb.CastReply, error) {
	v, problems := vote.Check(inputOf(request), "")
	if problems != nil {
		return nil, status.Error(codes.InvalidArgument, problems.Error())
	}
	if err := s.send(ctx, []vote.Vote{v}); err != nil {
		return nil, err
	}
	return &votespb.CastReply{VoteId: v.VoteID}, nil
}

func (s *voteService) CastBatch(ctx context.Context, request *votespb.VoteBatch) (*votespb.BatchReply, error) {
	if len(request.GetVotes()) > vote.BatchMaxVotes { // before any per-vote work
		return nil, status.Errorf(codes.InvalidArgument, "votes: at most %d votes per batch, got %d",
			vote.BatchMaxVotes, len(request.GetVotes()))
	}
	inputs := make([]vote.Input, len(request.GetVotes()))
	for i, message := range request.GetVotes() {
		inputs[i] = inputOf(message)
	}
	votes, problems := vote.CheckBatch(inputs)
	if problems != nil {
		return nil, status.Error(codes.InvalidArgument, problems.Error())
	}
	if err := s.send(ctx, votes); err != nil {
		return nil, err
	}
	ids := make([]string, len(votes))
	for i, v := range votes {
		ids[i] = v.VoteID
	}
	return &votespb.BatchReply{Accepted: int32(len(votes)), VoteIds: ids}, nil
}

func (s *voteService) GetResults(context.Context, *votespb.ResultsRequest) (*votespb.Results, error) {
	return nil, status.Error(codes.Unimplemented, "the seed peer serves no reads")
}

func run(opts options) error {
	producer, err := newProducer(opts)
	if err != nil {
		return fmt.Errorf("kafka client: %w", err)
	}
	defer producer.Close()
	startup, cancel := context.WithTimeout(context.Background(), opts.startupTimeout)
	err = checkTopic(startup, producer, opts.topic)
	cancel()
	if err != nil {
		return fmt.Errorf("kafka at %s: %w", strings.Join(opts.bootstrap, ","), err)
	}
	listener, err := net.Listen("tcp", opts.listen)
	if err != nil {
		return fmt.Errorf("listen on %s: %w", opts.listen, err)
	}
	server := grpc.NewServer()
	votespb.RegisterVoteServiceServer(server, &voteService{
		producer: producer, awaitTimeout: opts.deliveryTimeout + time.Second,
	})
	stopped := make(chan struct{})
	go func() {
		signals := make(chan os.Signal, 1)
		signal.Notify(signals, syscall.SIGTERM, syscall.SIGINT)
		<-signals
		// Finish the calls in progress (bounded), then flush what is left for Kafka.
		timer := time.AfterFunc(10*time.Second, server.Stop)
		server.GracefulStop()
		timer.Stop()
		flush, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := producer.Flush(flush); err != nil {
			fmt.Fprintf(os.Stderr, "%s: flush at exit: %v\n", program, err)
		}
		close(stopped)
	}()
	// os.Stdout is unbuffered: the line is out before the first call can arrive.
	fmt.Printf("%s listening on %s\n", program, listener.Addr())
	if err := server.Serve(listener); err != nil {
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
