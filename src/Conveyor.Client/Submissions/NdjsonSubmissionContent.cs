using System.Buffers;
using System.IO.Pipelines;
using System.Net;
using System.Net.Http.Headers;
using System.Text.Json;

namespace Conveyor.Client.Internal;

/// <summary>
/// A submission as an NDJSON request body, written while the chunks are enumerated: the header line, then one line per
/// chunk. Nothing is buffered beyond the pipe's segment, so a submission of any size streams in bounded memory
/// (chunked transfer encoding; the length is not known up front).
/// </summary>
internal sealed class NdjsonSubmissionContent : HttpContent
{
    // Hand the socket a full buffer at a time, not one small line per write.
    private const int FlushEveryBytes = 64 * 1024;

    private readonly SubmitHeader _header;
    private readonly IAsyncEnumerable<SubmissionChunk> _chunks;
    private int _written;

    public NdjsonSubmissionContent(SubmitHeader header, IAsyncEnumerable<SubmissionChunk> chunks)
    {
        _header = header;
        _chunks = chunks;
        Headers.ContentType = new MediaTypeHeaderValue("application/x-ndjson") { CharSet = "utf-8" };
    }

    /// <summary>How many chunk lines were written (for the caller's diagnostics).</summary>
    public long ChunksWritten { get; private set; }

    /// <summary>What the caller's chunk sequence threw, if it did: surfaced as itself, not as a broken connection.</summary>
    public Exception? SourceFailure { get; private set; }

    protected override Task SerializeToStreamAsync(Stream stream, TransportContext? context) =>
        SerializeToStreamAsync(stream, context, CancellationToken.None);

    protected override async Task SerializeToStreamAsync(Stream stream, TransportContext? context, CancellationToken cancellationToken)
    {
        // The chunks may be a one-shot stream (a file being read, a query): a second send would silently submit
        // nothing, so refuse it (HttpClient may try to resend a request whose connection broke).
        if (Interlocked.Exchange(ref _written, 1) == 1)
        {
            throw new InvalidOperationException("A submission's chunks can be sent once; call SubmitAsync again with a fresh sequence.");
        }

        var pipe = PipeWriter.Create(stream, new StreamPipeWriterOptions(leaveOpen: true));
        var json = new Utf8JsonWriter(pipe);
        await using (json.ConfigureAwait(false))
        {
            JsonSerializer.Serialize(json, _header, SubmissionJsonContext.Default.SubmitHeader);
            var pending = EndLine(json, pipe);
            var chunks = _chunks.WithCancellation(cancellationToken).ConfigureAwait(false).GetAsyncEnumerator();
            try
            {
                while (true)
                {
                    SubmissionChunk chunk;
                    try
                    {
                        if (!await chunks.MoveNextAsync())
                        {
                            break;
                        }

                        chunk = chunks.Current;
                    }
                    catch (Exception exception) when (exception is not OperationCanceledException)
                    {
                        SourceFailure = exception;
                        throw;
                    }

                    WriteChunk(json, chunk);
                    pending += EndLine(json, pipe);
                    ChunksWritten++;
                    if (pending >= FlushEveryBytes)
                    {
                        await pipe.FlushAsync(cancellationToken).ConfigureAwait(false);
                        pending = 0;
                    }
                }
            }
            finally
            {
                await chunks.DisposeAsync();
            }

            await pipe.FlushAsync(cancellationToken).ConfigureAwait(false);
        }

        await pipe.CompleteAsync().ConfigureAwait(false);
    }

    protected override bool TryComputeLength(out long length)
    {
        length = 0;
        return false;
    }

    private static void WriteChunk(Utf8JsonWriter json, SubmissionChunk chunk)
    {
        json.WriteStartObject();
        if (chunk.Json is { ValueKind: not JsonValueKind.Null and not JsonValueKind.Undefined } data)
        {
            json.WritePropertyName("data");
            data.WriteTo(json);
        }
        else if (chunk.Bytes is { } bytes)
        {
            json.WriteBase64String("data_base64", bytes.Span);
        }

        json.WriteEndObject();
    }

    /// <summary>Commits the line to the pipe and ends it; returns the bytes added.</summary>
    private static long EndLine(Utf8JsonWriter json, PipeWriter pipe)
    {
        json.Flush();
        var length = json.BytesCommitted + 1;
        pipe.Write("\n"u8);
        json.Reset(pipe);
        return length;
    }
}
