package vote

import (
	"strings"
	"testing"
	"time"
)

func TestEncodeMatchesPythonEncodeRecord(t *testing.T) {
	v, problems := Check(Input{
		Name: "  Los \"Tres\" \\ <&> \u2028 Ñandú 🎸 \u200d ", Album: "\x1cPan\x1f",
		Year: 2012, Rank: 7, VoteID: "a1:b_c.d-e",
	}, "")
	if problems != nil {
		t.Fatalf("valid vote rejected: %v", problems)
	}
	key, value := Encode(v, time.Date(2024, 5, 6, 7, 8, 9, 123987000, time.UTC), "grpc")
	// What serve_app.domain.votes.encode_record printed for the same vote and time.
	want := "{\"vote_id\":\"a1:b_c.d-e\",\"name\":\"Los \\\"Tres\\\" \\\\ <&> \u2028 Ñandú 🎸 \u200d\"," +
		"\"album\":\"Pan\",\"year\":2012,\"rank\":7,\"received_at\":\"2024-05-06T07:08:09.123Z\",\"source\":\"grpc\"}"
	if string(value) != want {
		t.Errorf("value\n got %s\nwant %s", value, want)
	}
	if string(key) != "a1:b_c.d-e" {
		t.Errorf("key %q", key)
	}
}

func TestCheckNamesEachInvalidField(t *testing.T) {
	cases := []struct {
		in   Input
		want string
	}{
		{Input{Name: " \t", Album: "a", Year: 2000, Rank: 1}, "name: must not be empty or only whitespace"},
		{Input{Name: strings.Repeat("é", 201), Album: "a", Year: 2000, Rank: 1},
			"name: must be at most 200 characters after trimming (got 201)"},
		{Input{Name: "a", Album: "x\ny", Year: 2000, Rank: 1},
			"album: must not contain control characters (found U+000A)"},
		{Input{Name: "a", Album: "b", Year: 1899, Rank: 1}, "year: Input should be greater than or equal to 1900"},
		{Input{Name: "a", Album: "b", Year: 2000, Rank: 101}, "rank: Input should be less than or equal to 100"},
		{Input{Name: "a", Album: "b", Year: 2000, Rank: 1, VoteID: "-x"}, "vote_id: " + VoteIDProblem},
		{Input{Name: "a", Album: "b", Year: 2000, Rank: 1, VoteID: strings.Repeat("x", 65)}, "vote_id: " + VoteIDProblem},
	}
	for _, c := range cases {
		_, problems := Check(c.in, "")
		if len(problems) != 1 || problems[0] != c.want {
			t.Errorf("%+v: got %q, want %q", c.in, problems, c.want)
		}
	}
	if _, problems := Check(Input{Name: strings.Repeat("é", 200), Album: "b", Year: 2100, Rank: 100,
		VoteID: "x" + strings.Repeat("-", 63)}, ""); problems != nil {
		t.Errorf("limits rejected: %v", problems)
	}
}

func TestCheckAssignsUUID4WhenAbsent(t *testing.T) {
	v, problems := Check(Input{Name: "a", Album: "b", Year: 2000, Rank: 1}, "")
	if problems != nil || len(v.VoteID) != 36 || v.VoteID[14] != '4' {
		t.Errorf("vote_id %q, problems %v", v.VoteID, problems)
	}
}

func TestCheckBatchAllOrNothing(t *testing.T) {
	good := Input{Name: "a", Album: "b", Year: 2000, Rank: 1}
	bad := Input{Name: "a", Album: "b", Year: 3000, Rank: 0}
	votes, problems := CheckBatch([]Input{good, bad, good})
	want := Problems{"votes[1].year: Input should be less than or equal to 2100",
		"votes[1].rank: Input should be greater than or equal to 1"}
	if votes != nil || strings.Join(problems, "|") != strings.Join(want, "|") {
		t.Errorf("got %v %q", votes, problems)
	}
	if _, problems := CheckBatch(nil); len(problems) != 1 {
		t.Errorf("empty batch: %q", problems)
	}
	if _, problems := CheckBatch(make([]Input, BatchMaxVotes+1)); len(problems) != 1 {
		t.Errorf("too large batch: %q", problems)
	}
}
