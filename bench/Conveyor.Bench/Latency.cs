using System.Diagnostics;
using System.Globalization;

namespace Conveyor.Bench;

/// <summary>
/// Latency samples in microseconds. Each concurrent loop owns one recorder (no locking on the hot path);
/// <see cref="Summarize"/> merges them into one sorted array for exact percentiles.
/// </summary>
internal sealed class LatencyRecorder
{
    private long[] _samples = new long[1 << 14];
    private int _count;

    public int Count => _count;

    public void AddStopwatchTicks(long ticks) => Add(ticks * 1_000_000 / Stopwatch.Frequency);

    public void Add(long micros)
    {
        if (_count == _samples.Length)
        {
            Array.Resize(ref _samples, _samples.Length * 2);
        }
        _samples[_count++] = micros < 0 ? 0 : micros;
    }

    public static LatencySummary Summarize(IEnumerable<LatencyRecorder> recorders)
    {
        var all = recorders.ToArray();
        var merged = new long[all.Sum(r => r._count)];
        var at = 0;
        foreach (var r in all)
        {
            Array.Copy(r._samples, 0, merged, at, r._count);
            at += r._count;
        }
        Array.Sort(merged);
        return new LatencySummary(merged);
    }
}

internal sealed class LatencySummary(long[] sorted)
{
    public int Count => sorted.Length;

    /// <summary>Nearest-rank percentile in milliseconds.</summary>
    public double Percentile(double p)
    {
        if (sorted.Length == 0)
        {
            return double.NaN;
        }
        var rank = (int)Math.Ceiling(p / 100 * sorted.Length);
        return sorted[Math.Clamp(rank - 1, 0, sorted.Length - 1)] / 1000.0;
    }

    public double Max => sorted.Length == 0 ? double.NaN : sorted[^1] / 1000.0;

    public string Describe() => sorted.Length == 0
        ? "no samples"
        : string.Create(CultureInfo.InvariantCulture, $"p50 {Ms(Percentile(50))}, p99 {Ms(Percentile(99))}, max {Ms(Max)}");

    public static string Ms(double ms) => ms switch
    {
        double.NaN => "-",
        < 10 => ms.ToString("0.00", CultureInfo.InvariantCulture) + " ms",
        < 100 => ms.ToString("0.0", CultureInfo.InvariantCulture) + " ms",
        _ => ms.ToString("#,0", CultureInfo.InvariantCulture) + " ms",
    };
}
