namespace Conveyor;

/// <summary>Bounds on job fields and requests, shared by every way in.</summary>
public static class JobLimits
{
    public const int DefaultMaxAttempts = 25;
    public const int MaxMaxAttempts = 1000;
    public const int MinPriority = -1000;
    public const int MaxPriority = 1000;
    public const int MaxNameLength = 128;
    public const int MaxTags = 32;
    public const int MaxKeyLength = 256;
    public const int MaxLeaseCount = 1000;
    public const int MaxBatchJobs = 10_000;
    public static readonly TimeSpan MinLease = TimeSpan.FromSeconds(1);
    public static readonly TimeSpan MaxLease = TimeSpan.FromHours(12);
    public static readonly TimeSpan DefaultLease = TimeSpan.FromSeconds(30);
    public static readonly TimeSpan MaxWait = TimeSpan.FromSeconds(30);
    public const int MaxSearchLimit = 500;

    /// <summary>Queue names: letters, digits and <c>. _ - :</c>, 1–128 characters.</summary>
    public static bool IsValidQueueName(string? name)
    {
        if (string.IsNullOrEmpty(name) || name.Length > MaxNameLength) return false;
        foreach (var c in name)
        {
            if (!(char.IsAsciiLetterOrDigit(c) || c is '.' or '_' or '-' or ':')) return false;
        }
        return true;
    }
}
