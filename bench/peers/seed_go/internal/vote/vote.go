// Package vote is the votes contract in Go: validation as serve_app/domain/votes.py does it,
// and the Kafka record that encode_record produces, byte for byte.
package vote

import (
	"fmt"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/google/uuid"
)

// The limits of docs/contract.md ("A vote").
const (
	TextMaxChars  = 200
	YearMin       = 1900
	YearMax       = 2100
	RankMin       = 1
	RankMax       = 100
	BatchMaxVotes = 1000
	VoteIDMaxLen  = 64
	// RecordSchema is the "schema" header: votes.RECORD_SCHEMA.
	RecordSchema = "votes.v1.VoteRecord/1"
	// DetailsMaxChars bounds an error message: gRPC details travel in a trailer.
	DetailsMaxChars = 2000
)

// VoteIDProblem says what a vote_id must look like.
const VoteIDProblem = "must be 1-64 characters of letters, digits, '.', '_', ':' or '-', " +
	"starting with a letter or digit"

// Vote is a validated vote: trimmed texts, numbers in range, a vote_id (assigned when absent).
type Vote struct {
	VoteID string
	Name   string
	Album  string
	Year   int64
	Rank   int64
}

// Input is a vote as a client sent it; an empty VoteID means none (proto3 has no "absent").
type Input struct {
	Name, Album string
	Year, Rank  int64
	VoteID      string
}

// Problems lists what is wrong with a request, each as "field: why".
type Problems []string

func (p Problems) Error() string { return Describe(p, DetailsMaxChars) }

// Describe joins problems into one line of at most maxChars, saying how many it left out.
func Describe(problems []string, maxChars int) string {
	var parts []string
	used := 0
	for i, problem := range problems {
		if len(parts) > 0 && used+len(problem)+40 > maxChars {
			parts = append(parts, fmt.Sprintf("... and %d more errors", len(problems)-i))
			break
		}
		parts = append(parts, problem)
		used += len(problem) + 2
	}
	line := strings.Join(parts, "; ")
	if len(line) > maxChars {
		line = line[:maxChars-3] + "..."
	}
	return line
}

// Check validates one vote; prefix ("votes[3].") goes before each field name. The vote_id is
// assigned (UUID4) when absent.
func Check(in Input, prefix string) (Vote, Problems) {
	var problems Problems
	name, why := checkText(in.Name)
	if why != "" {
		problems = append(problems, prefix+"name: "+why)
	}
	album, why := checkText(in.Album)
	if why != "" {
		problems = append(problems, prefix+"album: "+why)
	}
	if why := CheckRange(in.Year, YearMin, YearMax); why != "" {
		problems = append(problems, prefix+"year: "+why)
	}
	if why := CheckRange(in.Rank, RankMin, RankMax); why != "" {
		problems = append(problems, prefix+"rank: "+why)
	}
	if in.VoteID != "" && !ValidVoteID(in.VoteID) {
		problems = append(problems, prefix+"vote_id: "+VoteIDProblem)
	}
	if problems != nil {
		return Vote{}, problems
	}
	voteID := in.VoteID
	if voteID == "" {
		voteID = uuid.NewString()
	}
	return Vote{VoteID: voteID, Name: name, Album: album, Year: in.Year, Rank: in.Rank}, nil
}

// CheckBatch validates 1..BatchMaxVotes votes, all or nothing.
func CheckBatch(inputs []Input) ([]Vote, Problems) {
	if len(inputs) == 0 {
		return nil, Problems{"votes: List should have at least 1 item after validation, not 0"}
	}
	if len(inputs) > BatchMaxVotes {
		return nil, Problems{fmt.Sprintf("votes: at most %d votes per batch, got %d",
			BatchMaxVotes, len(inputs))}
	}
	votes := make([]Vote, 0, len(inputs))
	var problems Problems
	for i, in := range inputs {
		v, why := Check(in, fmt.Sprintf("votes[%d].", i))
		problems = append(problems, why...)
		votes = append(votes, v)
	}
	if problems != nil {
		return nil, problems
	}
	return votes, nil
}

// CheckRange says why value is outside low..high, in pydantic's words, or "" when inside.
func CheckRange(value, low, high int64) string {
	if value < low {
		return fmt.Sprintf("Input should be greater than or equal to %d", low)
	}
	if value > high {
		return fmt.Sprintf("Input should be less than or equal to %d", high)
	}
	return ""
}

// isPythonSpace is str.isspace(): Go's unicode.IsSpace plus U+001C..U+001F, which Python strips.
func isPythonSpace(r rune) bool {
	return unicode.IsSpace(r) || (r >= 0x1c && r <= 0x1f)
}

// TrimPython is Python's str.strip().
func TrimPython(s string) string { return strings.TrimFunc(s, isPythonSpace) }

// checkText trims as Python's str.strip() does and checks what votes._text checks.
func checkText(value string) (string, string) {
	text := TrimPython(value)
	if text == "" {
		return "", "must not be empty or only whitespace"
	}
	if n := utf8.RuneCountInString(text); n > TextMaxChars {
		return "", fmt.Sprintf("must be at most %d characters after trimming (got %d)", TextMaxChars, n)
	}
	for _, r := range text {
		// Cc (C0, DEL, C1). Lone surrogates (Cs) cannot occur: Go strings decode them as U+FFFD.
		if unicode.IsControl(r) {
			return "", fmt.Sprintf("must not contain control characters (found U+%04X)", r)
		}
	}
	return text, ""
}

// ValidVoteID is votes.VOTE_ID_PATTERN: ^[A-Za-z0-9][A-Za-z0-9._:-]{0,63}$.
func ValidVoteID(id string) bool {
	if len(id) == 0 || len(id) > VoteIDMaxLen {
		return false
	}
	for i := 0; i < len(id); i++ {
		c := id[i]
		alnum := (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9')
		if !alnum && (i == 0 || (c != '.' && c != '_' && c != ':' && c != '-')) {
			return false
		}
	}
	return true
}

// Header is one Kafka record header.
type Header struct {
	Key   string
	Value []byte
}

// Headers are votes._HEADERS[source].
func Headers(source string) []Header {
	return []Header{
		{Key: "content-type", Value: []byte("application/json")},
		{Key: "schema", Value: []byte(RecordSchema)},
		{Key: "source", Value: []byte(source)},
	}
}

// FormatTimestamp is votes.format_timestamp: UTC, milliseconds (truncated), a Z.
func FormatTimestamp(t time.Time) string {
	return t.UTC().Format("2006-01-02T15:04:05.000Z")
}

// Encode is votes.encode_record: key = vote_id, value = the compact JSON of
// json.dumps(payload, ensure_ascii=False, separators=(",", ":")), fields in the same order.
func Encode(v Vote, receivedAt time.Time, source string) (key, value []byte) {
	buf := make([]byte, 0, 160+len(v.Name)+len(v.Album))
	buf = append(buf, `{"vote_id":`...)
	buf = appendJSONString(buf, v.VoteID)
	buf = append(buf, `,"name":`...)
	buf = appendJSONString(buf, v.Name)
	buf = append(buf, `,"album":`...)
	buf = appendJSONString(buf, v.Album)
	buf = append(buf, `,"year":`...)
	buf = strconv.AppendInt(buf, v.Year, 10)
	buf = append(buf, `,"rank":`...)
	buf = strconv.AppendInt(buf, v.Rank, 10)
	buf = append(buf, `,"received_at":"`...)
	buf = append(buf, FormatTimestamp(receivedAt)...)
	buf = append(buf, `","source":`...)
	buf = appendJSONString(buf, source)
	buf = append(buf, '}')
	return []byte(v.VoteID), buf
}

// appendJSONString escapes as Python's json.dumps with ensure_ascii=False: only '"', '\\' and
// characters below U+0020 (encoding/json would also escape <, >, &, U+2028 and U+2029).
func appendJSONString(buf []byte, s string) []byte {
	const hex = "0123456789abcdef"
	buf = append(buf, '"')
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '"' || c == '\\':
			buf = append(buf, '\\', c)
		case c == '\n':
			buf = append(buf, '\\', 'n')
		case c == '\r':
			buf = append(buf, '\\', 'r')
		case c == '\t':
			buf = append(buf, '\\', 't')
		case c == '\b':
			buf = append(buf, '\\', 'b')
		case c == '\f':
			buf = append(buf, '\\', 'f')
		case c < 0x20:
			buf = append(buf, '\\', 'u', '0', '0', hex[c>>4], hex[c&0xf])
		default:
			buf = append(buf, c)
		}
	}
	return append(buf, '"')
}
