using System.Net;
using System.Security.Cryptography;
using System.Text;

namespace Conveyor.Server.Security;

/// <summary>What a route needs. Roles grant sets of these (see <see cref="ApiKeyRoles"/>).</summary>
public enum Access
{
    /// <summary>Enqueue jobs.</summary>
    Enqueue,
    /// <summary>Read jobs, queues, stats, metrics.</summary>
    Read,
    /// <summary>Lease, heartbeat, complete, fail, release.</summary>
    Work,
    /// <summary>Cancel, retry, pause, resume.</summary>
    Admin,
}

public enum ApiKeyRole
{
    Producer,
    Consumer,
    Admin,
}

public static class ApiKeyRoles
{
    public static bool Allows(this ApiKeyRole role, Access access) => role switch
    {
        ApiKeyRole.Admin => true,
        ApiKeyRole.Producer => access is Access.Enqueue or Access.Read,
        ApiKeyRole.Consumer => access is Access.Work or Access.Read,
        _ => false,
    };

    public static string ToWire(this ApiKeyRole role) => role.ToString().ToLowerInvariant();
}

/// <summary>One configured key. Only its SHA-256 is kept, so comparisons take the same time whatever the input.</summary>
public sealed class ApiKey
{
    private ApiKey(byte[] hash, ApiKeyRole role)
    {
        Hash = hash;
        Role = role;
    }

    internal byte[] Hash { get; }

    public ApiKeyRole Role { get; }

    public static ApiKey Create(string key, ApiKeyRole role)
    {
        if (string.IsNullOrWhiteSpace(key) || key.Length < 16)
            throw new ArgumentException("An API key must be at least 16 characters long; generate one with `openssl rand -hex 24`.");
        return new ApiKey(SHA256.HashData(Encoding.UTF8.GetBytes(key)), role);
    }

    /// <summary>Parses <c>key:role[,key:role…]</c> (the form of --api-keys and CONVEYOR_API_KEYS).</summary>
    public static IReadOnlyList<ApiKey> ParseList(string? text)
    {
        if (string.IsNullOrWhiteSpace(text)) return [];
        var keys = new List<ApiKey>();
        foreach (var entry in text.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries))
        {
            var colon = entry.LastIndexOf(':');
            if (colon <= 0) throw new ArgumentException("Each API key is written key:role, with role producer, consumer or admin.");
            var role = entry[(colon + 1)..] switch
            {
                "producer" => ApiKeyRole.Producer,
                "consumer" => ApiKeyRole.Consumer,
                "admin" => ApiKeyRole.Admin,
                var other => throw new ArgumentException($"'{other}' is not a role: use producer, consumer or admin."),
            };
            keys.Add(Create(entry[..colon], role));
        }
        return keys;
    }

    /// <summary>The role of a presented key, or null. Every configured key is compared, in constant time each.</summary>
    public static ApiKeyRole? Find(IReadOnlyList<ApiKey> keys, string presented)
    {
        Span<byte> hash = stackalloc byte[32];
        SHA256.HashData(Encoding.UTF8.GetBytes(presented), hash);
        ApiKeyRole? found = null;
        foreach (var key in keys)
        {
            if (CryptographicOperations.FixedTimeEquals(hash, key.Hash)) found ??= key.Role;
        }
        return found;
    }

    public static bool IsLoopback(string host) =>
        host is "localhost" || (IPAddress.TryParse(host.Trim('[', ']'), out var address) && IPAddress.IsLoopback(address));
}
