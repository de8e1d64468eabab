// Command go-exporter is the reference exporter built with client_golang v1.25.0 that
// scrapepool's tests scrape and that produces the Prometheus protobuf fixtures in
// testdata/exposition/.
//
//	go-exporter serve -listen 127.0.0.1:PORT    serve /metrics (protobuf, OpenMetrics, text)
//	go-exporter text2pb < in.prom > out.pb      text format in, delimited protobuf out
//
// serve answers /metrics with promhttp.HandlerFor and content negotiation, OpenMetrics and
// its _created lines enabled. Every family is a const metric with fixed values, created
// timestamps and exemplar timestamps, and there are no Go runtime or process collectors,
// so every answer for one Accept header is the same bytes on every request and every run.
// Once it listens it prints the address on stdout ("-listen 127.0.0.1:0" picks a port).
//
// text2pb parses the text format with expfmt's TextParser (UTF-8 name validation) and
// writes every family, in sorted name order, in the delimited protobuf format.
package main

import (
	"bufio"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"sort"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"google.golang.org/protobuf/proto"
)

func main() {
	if len(os.Args) < 2 {
		usage()
	}
	var err error
	switch os.Args[1] {
	case "serve":
		fs := flag.NewFlagSet("serve", flag.ExitOnError)
		listen := fs.String("listen", "127.0.0.1:0", "address to listen on")
		_ = fs.Parse(os.Args[2:])
		err = serve(*listen)
	case "text2pb":
		err = text2pb(os.Stdin, os.Stdout)
	default:
		usage()
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "go-exporter %s: %v\n", os.Args[1], err)
		os.Exit(1)
	}
}

func usage() {
	fmt.Fprintln(os.Stderr, "usage: go-exporter serve [-listen 127.0.0.1:PORT] | go-exporter text2pb < in.prom > out.pb")
	os.Exit(2)
}

// gaugeHistograms names the families whose type gather rewrites to GAUGE_HISTOGRAM: the
// registry types every metric with a dto.Histogram as HISTOGRAM, the encoders handle both.
var gaugeHistograms = map[string]bool{"demo_queue_wait_seconds": true}

func serve(listen string) error {
	reg := prometheus.NewPedanticRegistry()
	if err := reg.Register(demoCollector{}); err != nil {
		return err
	}
	gather := prometheus.GathererFunc(func() ([]*dto.MetricFamily, error) {
		mfs, err := reg.Gather()
		for _, mf := range mfs {
			if gaugeHistograms[mf.GetName()] {
				mf.Type = dto.MetricType_GAUGE_HISTOGRAM.Enum()
			}
		}
		return mfs, err
	})
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(gather, promhttp.HandlerOpts{
		EnableOpenMetrics:                   true,
		EnableOpenMetricsTextCreatedSamples: true,
	}))
	ln, err := net.Listen("tcp", listen)
	if err != nil {
		return err
	}
	fmt.Printf("%s\n", ln.Addr())
	return http.Serve(ln, mux)
}

func text2pb(in io.Reader, out io.Writer) error {
	parser := expfmt.NewTextParser(model.UTF8Validation)
	mfs, err := parser.TextToMetricFamilies(in)
	if err != nil {
		return err
	}
	names := make([]string, 0, len(mfs))
	for name := range mfs {
		names = append(names, name)
	}
	sort.Strings(names)
	w := bufio.NewWriter(out)
	enc := expfmt.NewEncoder(w, expfmt.NewFormat(expfmt.TypeProtoDelim))
	for _, name := range names {
		if err := enc.Encode(mfs[name]); err != nil {
			return fmt.Errorf("%s: %w", name, err)
		}
	}
	return w.Flush()
}

var (
	created = time.Unix(1700000000, 0).UTC()   // 2023-11-14T22:13:20Z
	exTime  = time.Unix(1700000100, 5e8).UTC() // exemplar timestamps, 100.5 s later
)

var (
	descRequests = prometheus.NewDesc("demo_requests_total",
		"Requests handled, by method and code.", []string{"method", "code"}, nil)
	descBytesRead = prometheus.NewDesc("demo_bytes_read",
		"Bytes read, a counter whose name has no _total suffix.", []string{"device"}, nil)
	descTemperature = prometheus.NewDesc("demo_temperature_celsius",
		"Temperature by sensor.", []string{"sensor"}, nil)
	descUntyped = prometheus.NewDesc("demo_untyped_value",
		"An untyped value; its HELP has a backslash \\ and a newline \n to escape.", []string{"kind"}, nil)
	descRPC = prometheus.NewDesc("demo_rpc_duration_seconds",
		"RPC latency, a summary with quantiles 0.5, 0.9 and 0.99.", []string{"service"}, nil)
	descBatch = prometheus.NewDesc("demo_batch_size_bytes",
		"Batch sizes, a summary without quantiles.", nil, prometheus.Labels{"queue": "ingest"})
	descDuration = prometheus.V2.NewDesc("demo_request_duration_seconds",
		"Request duration, a classic-only histogram with bucket exemplars and a unit.",
		prometheus.UnconstrainedLabels{"handler"}, nil, prometheus.WithUnit("seconds"))
	descNative = prometheus.NewDesc("demo_native_seconds",
		"A native-only integer histogram: schema 3, positive and negative spans with gaps.", []string{"path"}, nil)
	descMixed = prometheus.NewDesc("demo_mixed_seconds",
		"A histogram with both classic buckets and native buckets.", nil, nil)
	descQueueWait = prometheus.NewDesc("demo_queue_wait_seconds",
		"A native gauge histogram.", []string{"queue"}, nil)
	descEmpty = prometheus.NewDesc("demo_empty_native_seconds",
		"A native histogram without observations.", nil, nil)
	descUTF8 = prometheus.NewDesc("demo.utf8.gauge",
		"A gauge whose name and label name hold dots.", []string{"service.name"}, nil)

	allDescs = []*prometheus.Desc{
		descRequests, descBytesRead, descTemperature, descUntyped, descRPC, descBatch,
		descDuration, descNative, descMixed, descQueueWait, descEmpty, descUTF8,
	}
)

// demoCollector emits the fixed families; Collect builds fresh const metrics every time.
type demoCollector struct{}

func (demoCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range allDescs {
		ch <- d
	}
}

func (demoCollector) Collect(ch chan<- prometheus.Metric) {
	must := prometheus.MustNewConstMetricWithCreatedTimestamp
	ex := func(value float64, traceID string) prometheus.Exemplar {
		return prometheus.Exemplar{Value: value, Labels: prometheus.Labels{"trace_id": traceID}, Timestamp: exTime}
	}

	// Counters: the exemplar goes into dto.Counter.exemplar.
	ch <- prometheus.MustNewMetricWithExemplars(
		must(descRequests, prometheus.CounterValue, 1027, created, "GET", "200"),
		ex(1, "4bf92f3577b34da6a3ce929d0e0e4736"))
	ch <- must(descRequests, prometheus.CounterValue, 3, created, "POST", "500")
	ch <- must(descBytesRead, prometheus.CounterValue, 1048576, created, "sda")

	// Gauges and an untyped value (no created timestamps: the dto has none for them).
	ch <- prometheus.MustNewConstMetric(descTemperature, prometheus.GaugeValue, 21.5, "inside")
	ch <- prometheus.MustNewConstMetric(descTemperature, prometheus.GaugeValue, -3.25, "outside")
	ch <- prometheus.MustNewConstMetric(descUntyped, prometheus.UntypedValue, 42, `quote"d`)
	ch <- prometheus.MustNewConstMetric(descUTF8, prometheus.GaugeValue, 7, "checkout")

	// Summaries.
	quantiles := map[float64]float64{0.5: 0.012, 0.9: 0.05, 0.99: 0.2}
	ch <- prometheus.MustNewConstSummaryWithCreatedTimestamp(descRPC, 1200, 24.75, quantiles, created, "auth")
	ch <- prometheus.MustNewConstSummaryWithCreatedTimestamp(descRPC, 30, 0.9,
		map[float64]float64{0.5: 0.025, 0.9: 0.04, 0.99: 0.06}, created, "billing")
	ch <- prometheus.MustNewConstSummaryWithCreatedTimestamp(descBatch, 8, 16384, nil, created)

	// Classic-only histogram: cumulative buckets 0.1, 0.5, 1, 5 (+Inf implicit). The exemplar
	// above the last bound makes client_golang add the +Inf bucket explicitly.
	ch <- prometheus.MustNewMetricWithExemplars(
		prometheus.MustNewConstHistogramWithCreatedTimestamp(descDuration, 17, 31.5,
			map[float64]uint64{0.1: 4, 0.5: 9, 1: 12, 5: 15}, created, "/api"),
		ex(0.05, "00000000000000000000000000000001"),
		ex(0.75, "00000000000000000000000000000002"),
		ex(7.5, "00000000000000000000000000000003"))
	ch <- prometheus.MustNewConstHistogramWithCreatedTimestamp(descDuration, 10, 0.5,
		map[float64]uint64{0.1: 10, 0.5: 10, 1: 10, 5: 10}, created, "/health")

	// Native-only integer histogram, schema 3, zero threshold 1e-128, zero count 3.
	// Positive buckets -2..0 and 4..5 (a gap of 3, so two spans), negative buckets 1..2 and 6.
	ch <- prometheus.MustNewMetricWithExemplars(
		prometheus.MustNewConstNativeHistogram(descNative, 28, 12.25,
			map[int]int64{-2: 2, -1: 5, 0: 1, 4: 3, 5: 7},
			map[int]int64{1: 4, 2: 1, 6: 2},
			3, 3, 1e-128, created, "/upload"),
		ex(1.5, "00000000000000000000000000000004"))

	// Both classic and native: observations 0.2 0.3 0.4 0.7 0.9 1.5 3, native schema 0
	// (bucket i is (2^(i-1), 2^i]), zero threshold client_golang's default.
	ch <- prometheus.MustNewMetricWithExemplars(
		mergeHistograms(
			prometheus.MustNewConstHistogramWithCreatedTimestamp(descMixed, 7, 7,
				map[float64]uint64{0.25: 1, 0.5: 3, 1: 5, 2: 6}, created),
			prometheus.MustNewConstNativeHistogram(descMixed, 7, 7,
				map[int]int64{-2: 1, -1: 2, 0: 2, 1: 1, 2: 1}, nil,
				0, 0, prometheus.DefNativeHistogramZeroThreshold, created)),
		ex(0.7, "00000000000000000000000000000005"))

	// Native gauge histogram (typed GAUGE_HISTOGRAM in gather), no created timestamp.
	ch <- withoutCreated{prometheus.MustNewConstNativeHistogram(descQueueWait, 6, 4.5,
		map[int]int64{0: 3, 1: 2}, nil, 1, 1, 0.001, time.Time{}, "ingest")}

	// No observations: schema 0, zero threshold 0, and client_golang's no-op span {0, 0}.
	ch <- prometheus.MustNewConstNativeHistogram(descEmpty, 0, 0, nil, nil, 0, 0, 0, created)
}

// mergedHistogram writes the classic buckets of one const histogram into a copy of a
// native const histogram of the same desc.
type mergedHistogram struct {
	classic, native prometheus.Metric
}

func mergeHistograms(classic, native prometheus.Metric) prometheus.Metric {
	return mergedHistogram{classic, native}
}

func (m mergedHistogram) Desc() *prometheus.Desc { return m.native.Desc() }

func (m mergedHistogram) Write(out *dto.Metric) error {
	var c dto.Metric
	if err := m.classic.Write(&c); err != nil {
		return err
	}
	if err := m.native.Write(out); err != nil {
		return err
	}
	h := proto.Clone(out.Histogram).(*dto.Histogram)
	h.Bucket = c.Histogram.Bucket
	out.Histogram = h
	return nil
}

// withoutCreated drops the created timestamp of a histogram (NewConstNativeHistogram
// always sets one, the zero time.Time as year 1).
type withoutCreated struct{ prometheus.Metric }

func (m withoutCreated) Write(out *dto.Metric) error {
	if err := m.Metric.Write(out); err != nil {
		return err
	}
	h := proto.Clone(out.Histogram).(*dto.Histogram)
	h.CreatedTimestamp = nil
	out.Histogram = h
	return nil
}
