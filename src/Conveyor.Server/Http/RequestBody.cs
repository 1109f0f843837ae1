using System.Buffers;
using System.Text.Json;
using System.Text.Json.Serialization.Metadata;

namespace Conveyor.Server.Http;

/// <summary>A request body read into a pooled buffer, refused with 413 past a limit. Dispose returns the buffer.</summary>
internal sealed class RequestBody : IDisposable
{
    private byte[] _buffer;

    private RequestBody(byte[] buffer, int length)
    {
        _buffer = buffer;
        Length = length;
    }

    public int Length { get; }

    public ReadOnlySpan<byte> Span => _buffer.AsSpan(0, Length);

    public ReadOnlyMemory<byte> Memory => _buffer.AsMemory(0, Length);

    public bool IsEmpty => IsBlank(Span);

    /// <summary>Nothing but whitespace: an empty body, however it came.</summary>
    public static bool IsBlank(ReadOnlySpan<byte> body) => body.Trim(" \t\r\n"u8).IsEmpty;

    public static async Task<(RequestBody? Body, IResult? Error)> ReadAsync(HttpContext context, long limit)
    {
        var declared = context.Request.ContentLength;
        if (declared > limit) return (null, TooLarge(limit));
        var buffer = ArrayPool<byte>.Shared.Rent((int)Math.Clamp(declared ?? 4096, 256, limit + 1));
        var length = 0;
        try
        {
            while (true)
            {
                if (length == buffer.Length)
                {
                    if (length > limit) break;
                    var bigger = ArrayPool<byte>.Shared.Rent((int)Math.Min((long)buffer.Length * 2, limit + 1));
                    buffer.AsSpan(0, length).CopyTo(bigger);
                    ArrayPool<byte>.Shared.Return(buffer);
                    buffer = bigger;
                }
                var read = await context.Request.Body.ReadAsync(buffer.AsMemory(length), context.RequestAborted);
                if (read == 0) break;
                length += read;
            }
        }
        catch (BadHttpRequestException e) when (e.StatusCode == StatusCodes.Status413PayloadTooLarge)
        {
            ArrayPool<byte>.Shared.Return(buffer);
            return (null, TooLarge(limit));
        }
        if (length > limit)
        {
            ArrayPool<byte>.Shared.Return(buffer);
            return (null, TooLarge(limit));
        }
        return (new RequestBody(buffer, length), null);
    }

    private static IResult TooLarge(long limit) =>
        Problems.TooLarge($"The request body is larger than the limit of {limit:N0} bytes. Send less per request, or raise the limit (--max-job-bytes / --max-body-bytes).");

    /// <summary>Parses JSON, turning any syntax or type error into a 400 that names where it went wrong.</summary>
    public static bool TryParse<T>(ReadOnlySpan<byte> json, JsonTypeInfo<T> type, out T? value, out IResult? error)
    {
        try
        {
            value = JsonSerializer.Deserialize(json, type);
            error = null;
            return true;
        }
        catch (JsonException e)
        {
            value = default;
            error = Problems.BadRequest(Describe(e));
            return false;
        }
    }

    public static string Describe(JsonException e)
    {
        var where = string.IsNullOrEmpty(e.Path) || e.Path == "$" ? "" : $" at {e.Path}";
        var message = e.Message;
        var cut = message.IndexOf(" Path:", StringComparison.Ordinal);
        if (cut > 0) message = message[..cut];
        return $"The request body is not valid JSON for this route{where}: {message}";
    }

    public void Dispose()
    {
        if (_buffer.Length == 0) return;
        ArrayPool<byte>.Shared.Return(_buffer);
        _buffer = [];
    }
}
