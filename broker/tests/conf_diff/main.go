// Dumps nats-server's own conf parser result for each file named on the
// command line, in a canonical form that broker/tests/config.rs compares
// with broker::conf (differential test of the grammar). The test copies
// nats-server 2.9.10's conf/lex.go and conf/parse.go from Debian's
// golang-github-nats-io-nats-server-dev next to this file at run time.
package main

import (
	"bufio"
	"encoding/hex"
	"fmt"
	"math"
	"os"
	"sort"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"confdiff/conf"
)

// canon renders a value; ok is false if a string is not valid UTF-8
// (broker::conf stores strings as Rust Strings, so those cannot match).
func canon(v interface{}, ok *bool) string {
	switch x := v.(type) {
	case string:
		if !utf8.ValidString(x) {
			*ok = false
		}
		return "S" + hex.EncodeToString([]byte(x))
	case int64:
		return "I" + strconv.FormatInt(x, 10)
	case float64:
		return "F" + strconv.FormatUint(math.Float64bits(x), 16)
	case bool:
		return "B" + strconv.FormatBool(x)
	case time.Time:
		return "D" + x.Format("2006-01-02T15:04:05Z")
	case []interface{}:
		parts := []string{}
		for _, e := range x {
			parts = append(parts, canon(e, ok))
		}
		return "[" + strings.Join(parts, ",") + "]"
	case map[string]interface{}:
		keys := []string{}
		for k := range x {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		parts := []string{}
		for _, k := range keys {
			if !utf8.ValidString(k) {
				*ok = false
			}
			parts = append(parts, hex.EncodeToString([]byte(k))+":"+canon(x[k], ok))
		}
		return "{" + strings.Join(parts, ",") + "}"
	}
	return fmt.Sprintf("?%T", v)
}

func main() {
	out := bufio.NewWriter(os.Stdout)
	defer out.Flush()
	for _, f := range os.Args[1:] {
		data, err := os.ReadFile(f)
		if err != nil {
			fmt.Fprintf(out, "%s\tREADERR\n", f)
			continue
		}
		func() {
			defer func() {
				if r := recover(); r != nil {
					fmt.Fprintf(out, "%s\tPANIC\n", f)
				}
			}()
			m, err := conf.Parse(string(data))
			if err != nil {
				fmt.Fprintf(out, "%s\tERR\n", f)
				return
			}
			ok := true
			c := canon(m, &ok)
			if !ok {
				c = "LOSSY"
			}
			fmt.Fprintf(out, "%s\t%s\n", f, c)
		}()
	}
}
