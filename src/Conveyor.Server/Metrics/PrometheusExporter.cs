using System.Collections.Concurrent;
using System.Collections.Frozen;
using System.Diagnostics.Metrics;
using System.Globalization;
using System.Text;

namespace Conveyor.Server.Metrics;

/// <summary>
/// Listens to our meters (and ASP.NET Core's request duration) through <see cref="MeterListener"/>, aggregates in
/// memory, and writes the Prometheus text exposition format 0.0.4. Written here because the Prometheus exporters
/// are not in our package source; it covers counters and histograms, which is all we publish.
/// </summary>
internal sealed class PrometheusExporter : IDisposable
{
    private static readonly double[] SecondsBuckets =
        [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300];
    private static readonly double[] CountBuckets = [1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 4096];

    private static readonly HashSet<string> AspNetInstruments = ["http.server.request.duration"];
    // ASP.NET's tag names, each mapped once to its label name: a request's measurement then converts nothing.
    private static readonly FrozenDictionary<string, string> AspNetTags =
        new[] { "http.request.method", "http.response.status_code", "http.route" }.ToFrozenDictionary(n => n, Sanitize);

    // Status codes arrive boxed as ints; their label text is made once per code, not once per request.
    private static readonly string?[] IntLabels = new string?[1000];

    private readonly MeterListener _listener = new();
    private readonly ConcurrentDictionary<Instrument, InstrumentSeries> _instruments = new();

    /// <param name="meterFactory">This host's factory: ASP.NET Core's meters are per host, and only ours belong on our page.</param>
    public PrometheusExporter(IMeterFactory meterFactory)
    {
        _listener.InstrumentPublished = (instrument, listener) =>
        {
            var ours = instrument.Meter.Name == ConveyorMetrics.MeterName;
            var aspnet = instrument.Meter.Name == "Microsoft.AspNetCore.Hosting" && AspNetInstruments.Contains(instrument.Name)
                && ReferenceEquals(instrument.Meter.Scope, meterFactory);
            if (!ours && !aspnet) return;
            var isHistogram = instrument.GetType().Name.StartsWith("Histogram", StringComparison.Ordinal);
            var buckets = instrument.Unit == "s" ? SecondsBuckets : CountBuckets;
            _instruments[instrument] = new InstrumentSeries(instrument, isHistogram ? buckets : null, aspnet ? AspNetTags : null);
            listener.EnableMeasurementEvents(instrument);
        };
        _listener.SetMeasurementEventCallback<long>((i, value, tags, _) => Record(i, value, tags));
        _listener.SetMeasurementEventCallback<double>((i, value, tags, _) => Record(i, value, tags));
        _listener.SetMeasurementEventCallback<int>((i, value, tags, _) => Record(i, value, tags));
        _listener.Start();
    }

    private void Record(Instrument instrument, double value, ReadOnlySpan<KeyValuePair<string, object?>> tags)
    {
        if (_instruments.TryGetValue(instrument, out var series)) series.Record(value, tags);
    }

    /// <summary>Appends every instrument with at least one recorded series.</summary>
    public void WriteTo(StringBuilder text)
    {
        foreach (var series in _instruments.Values.OrderBy(s => s.Name, StringComparer.Ordinal)) series.WriteTo(text);
    }

    public void Dispose() => _listener.Dispose();

    /// <summary>Prometheus names: dots to underscores, the unit as a suffix, _total on counters.</summary>
    public static string MetricName(string name, string? unit, bool counter)
    {
        var baseName = Sanitize(name);
        if (unit == "s") baseName += "_seconds";
        return counter ? baseName + "_total" : baseName;
    }

    public static string Sanitize(string name)
    {
        var chars = name.ToCharArray();
        for (var i = 0; i < chars.Length; i++)
        {
            if (!(char.IsAsciiLetterOrDigit(chars[i]) || chars[i] is '_' or ':')) chars[i] = '_';
        }
        return new string(chars);
    }

    public static void AppendLabelValue(StringBuilder text, string value)
    {
        foreach (var c in value)
        {
            switch (c)
            {
                case '\\': text.Append(@"\\"); break;
                case '"': text.Append("\\\""); break;
                case '\n': text.Append(@"\n"); break;
                default: text.Append(c); break;
            }
        }
    }

    public static string EscapeHelp(string help) => help.Replace("\\", @"\\", StringComparison.Ordinal).Replace("\n", @"\n", StringComparison.Ordinal);

    public static string Number(double value) =>
        double.IsPositiveInfinity(value) ? "+Inf" : double.IsNegativeInfinity(value) ? "-Inf" : double.IsNaN(value) ? "NaN"
        : value.ToString("R", CultureInfo.InvariantCulture);

    /// <summary>All series (one per distinct tag set) of one instrument.</summary>
    private sealed class InstrumentSeries(Instrument instrument, double[]? buckets, FrozenDictionary<string, string>? keepTags)
    {
        private readonly ConcurrentDictionary<TagSet, Series> _series = new();

        public string Name { get; } = MetricName(instrument.Name, instrument.Unit, counter: buckets is null);

        public void Record(double value, ReadOnlySpan<KeyValuePair<string, object?>> tags)
        {
            var key = TagSet.From(tags, keepTags);
            var series = _series.GetOrAdd(key, static (_, b) => new Series(b), buckets);
            series.Add(value);
        }

        public void WriteTo(StringBuilder text)
        {
            if (_series.IsEmpty) return;
            var help = instrument.Description ?? instrument.Name;
            text.Append("# HELP ").Append(Name).Append(' ').Append(EscapeHelp(help)).Append('\n');
            text.Append("# TYPE ").Append(Name).Append(buckets is null ? " counter\n" : " histogram\n");
            foreach (var (tags, series) in _series.OrderBy(p => p.Key.ToString(), StringComparer.Ordinal))
            {
                series.WriteTo(text, Name, tags, buckets);
            }
        }
    }

    /// <summary>Up to four (name, value) pairs; enough for every instrument we export.</summary>
    private readonly record struct TagSet(string? N0, string? V0, string? N1, string? V1, string? N2, string? V2, string? N3, string? V3)
    {
        public static TagSet From(ReadOnlySpan<KeyValuePair<string, object?>> tags, FrozenDictionary<string, string>? keep)
        {
            var set = default(TagSet);
            var n = 0;
            foreach (var tag in tags)
            {
                // Our own tags are already valid label names; ASP.NET's are kept only when listed, under their label name.
                var name = tag.Key;
                if (keep is not null && !keep.TryGetValue(tag.Key, out name)) continue;
                var value = LabelValue(tag.Value);
                set = n switch
                {
                    0 => set with { N0 = name, V0 = value },
                    1 => set with { N1 = name, V1 = value },
                    2 => set with { N2 = name, V2 = value },
                    3 => set with { N3 = name, V3 = value },
                    _ => set,
                };
                n++;
            }
            return set;
        }

        private static string LabelValue(object? value)
        {
            if (value is string text) return text;
            if (value is int code && (uint)code < (uint)IntLabels.Length)
            {
                return IntLabels[code] ??= code.ToString(CultureInfo.InvariantCulture);
            }
            return Convert.ToString(value, CultureInfo.InvariantCulture) ?? "";
        }

        public IEnumerable<(string Name, string Value)> Pairs()
        {
            if (N0 is not null) yield return (N0, V0!);
            if (N1 is not null) yield return (N1, V1!);
            if (N2 is not null) yield return (N2, V2!);
            if (N3 is not null) yield return (N3, V3!);
        }

        public override string ToString() => string.Join(",", Pairs().Select(p => p.Name + "=" + p.Value));
    }

    private sealed class Series(double[]? buckets)
    {
        private readonly Lock _gate = new();
        private readonly long[]? _bucketCounts = buckets is null ? null : new long[buckets.Length];
        private double _sum;
        private long _count;

        public void Add(double value)
        {
            lock (_gate)
            {
                _sum += value;
                _count++;
                if (_bucketCounts is null) return;
                for (var i = 0; i < buckets!.Length; i++)
                {
                    if (value <= buckets[i])
                    {
                        _bucketCounts[i]++;
                        break;
                    }
                }
            }
        }

        public void WriteTo(StringBuilder text, string name, TagSet tags, double[]? bounds)
        {
            double sum;
            long count;
            long[]? counts;
            lock (_gate)
            {
                sum = _sum;
                count = _count;
                counts = _bucketCounts?.ToArray();
            }
            if (counts is null)
            {
                Sample(text, name, tags, null, sum);
                return;
            }
            long cumulative = 0;
            for (var i = 0; i < counts.Length; i++)
            {
                cumulative += counts[i];
                Sample(text, name + "_bucket", tags, Number(bounds![i]), cumulative);
            }
            Sample(text, name + "_bucket", tags, "+Inf", count);
            Sample(text, name + "_sum", tags, null, sum);
            Sample(text, name + "_count", tags, null, count);
        }

        private static void Sample(StringBuilder text, string name, TagSet tags, string? le, double value)
        {
            text.Append(name);
            var first = true;
            foreach (var (label, labelValue) in tags.Pairs())
            {
                text.Append(first ? '{' : ',').Append(label).Append("=\"");
                AppendLabelValue(text, labelValue);
                text.Append('"');
                first = false;
            }
            if (le is not null) text.Append(first ? '{' : ',').Append("le=\"").Append(le).Append('"');
            if (!first || le is not null) text.Append('}');
            text.Append(' ').Append(Number(value)).Append('\n');
        }
    }
}
