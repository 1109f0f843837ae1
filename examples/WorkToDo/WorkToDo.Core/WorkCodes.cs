using System.Security.Cryptography;
using System.Text;

namespace WorkToDo.Core;

/// <summary>Work codes: a prefix saying where the work came from and 10 letters/digits.</summary>
public static class WorkCodes
{
    public const string ApiPrefix = "api-";
    public const string ConsumerPrefix = "consumer-";
    public const int SuffixLength = 10;
    private const string Alphabet = "abcdefghijklmnopqrstuvwxyz0123456789";

    /// <summary><c>api-</c> + 10 random letters/digits (36^10: a collision is a unique violation, and the API retries it).</summary>
    public static string NewApiCode() => ApiPrefix + RandomNumberGenerator.GetString(Alphabet, SuffixLength);

    /// <summary>
    /// <c>consumer-</c> + 10 letters/digits derived from the demand's identity (its idempotency key, else its job id), so a
    /// redelivered demand (at-least-once) maps to the same work instead of creating a second one.
    /// </summary>
    public static string ForDemand(string identity)
    {
        ArgumentException.ThrowIfNullOrEmpty(identity);
        var hash = SHA256.HashData(Encoding.UTF8.GetBytes(identity));
        var code = new StringBuilder(ConsumerPrefix, ConsumerPrefix.Length + SuffixLength);
        for (var i = 0; i < SuffixLength; i++) code.Append(Alphabet[hash[i] % Alphabet.Length]);
        return code.ToString();
    }
}
