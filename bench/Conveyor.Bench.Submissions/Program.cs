using System.Diagnostics;
using System.Globalization;
using System.Net.Http.Headers;
using System.Net.WebSockets;
using System.Text;
using System.Text.Json;
using Conveyor.Server;

// conveyor-bench-submissions: a 1,000-chunk × 1,000-operation submission through a server (submitted as streamed
// NDJSON, processed by WebSocket consumers, results streamed back), and the submit time of 10,000 chunks.
// Prints its figures; asserts nothing.
const string Usage = """
    conveyor-bench-submissions: submissions end to end (docs/benchmarks.md, "Submissions")

      --server URL        measure a running server; otherwise one is started in this process on a temp directory
      --postgres CONN     the in-process server keeps submissions in PostgreSQL (a fresh schema) instead of SQLite
      --chunks N          chunks of the processed submission (default 1000)
      --ops N             operations per chunk (default 1000)
      --submit-chunks N   chunks of the submit-only run (default 10000)
      --consumers N       WebSocket consumers (default 4)
      --reserve N         chunks per reserve message (default 10)
    """;

Uri? serverUri = null;
string? postgres = null;
int chunks = 1_000, ops = 1_000, submitChunks = 10_000, consumers = 4, reserve = 10;
for (var i = 0; i < args.Length; i++)
{
    string Next() => i + 1 < args.Length ? args[++i] : throw new ArgumentException($"{args[i]} needs a value");
    int Int() => int.Parse(Next(), CultureInfo.InvariantCulture);
    switch (args[i])
    {
        case "--server": serverUri = new Uri(Next()); break;
        case "--postgres": postgres = Next(); break;
        case "--chunks": chunks = Int(); break;
        case "--ops": ops = Int(); break;
        case "--submit-chunks": submitChunks = Int(); break;
        case "--consumers": consumers = Int(); break;
        case "--reserve": reserve = Int(); break;
        case "-h" or "--help": Console.WriteLine(Usage); return 0;
        default: Console.Error.WriteLine($"unknown argument {args[i]}\n{Usage}"); return 2;
    }
}

var directory = Directory.CreateTempSubdirectory("conveyor-bench-submissions-").FullName;
var schema = $"bench_submissions_{Environment.ProcessId}";
RunningServer? server = null;
if (serverUri is null)
{
    server = await ConveyorServer.StartAsync(new ServerOptions
    {
        Port = 0,
        DataDirectory = directory,
        PostgresConnectionString = postgres,
        PostgresSchema = schema,
        Out = null,
    });
    serverUri = server.BaseAddress;
}
var store = postgres is null ? (server is null ? "remote server" : "SQLite") : "PostgreSQL";
using var http = new HttpClient { BaseAddress = serverUri, Timeout = TimeSpan.FromMinutes(30) };
try
{
    Console.WriteLine($"server {serverUri} ({store}), {Environment.ProcessorCount} cores, {RuntimeInformationText()}");

    // 1. Submit only: 10,000 chunks streamed as NDJSON, until the server answers 201 (every chunk durable).
    var submitQueue = $"bench-submit-{Environment.ProcessId}";
    var watch = Stopwatch.StartNew();
    var (_, submitBytes) = await SubmitAsync(http, submitQueue, submitChunks, ops);
    var submitTime = watch.Elapsed;

    // 2. The processed submission.
    var queue = $"bench-{Environment.ProcessId}";
    watch.Restart();
    var (id, bytes) = await SubmitAsync(http, queue, chunks, ops);
    var submitOne = watch.Elapsed;
    watch.Restart();
    var done = (await Task.WhenAll(Enumerable.Range(0, consumers).Select(_ => ConsumeAsync(serverUri, queue, reserve, ops)))).Sum();
    var processTime = watch.Elapsed;
    using (var state = JsonDocument.Parse(await http.GetStringAsync($"/v1/submissions/{id}")))
    {
        if (state.RootElement.GetProperty("state").GetString() != "completed" || done != chunks)
            throw new InvalidOperationException($"the submission is {state.RootElement.GetProperty("state")} after {done} chunks");
    }
    watch.Restart();
    var lines = 0;
    using (var results = await http.GetAsync($"/v1/submissions/{id}/results", HttpCompletionOption.ResponseHeadersRead))
    using (var reader = new StreamReader(await results.Content.ReadAsStreamAsync()))
    {
        while (await reader.ReadLineAsync() is not null) lines++;
    }
    var resultsTime = watch.Elapsed;

    Console.WriteLine();
    Console.WriteLine("| measure | value |");
    Console.WriteLine("|---|---|");
    Console.WriteLine($"| submit {submitChunks:N0} chunks × {ops:N0} ops (NDJSON, {submitBytes / 1e6:F1} MB) | {submitTime.TotalSeconds:F2} s ({submitChunks / submitTime.TotalSeconds:N0} chunks/s) |");
    Console.WriteLine($"| submit {chunks:N0} chunks × {ops:N0} ops ({bytes / 1e6:F1} MB) | {submitOne.TotalSeconds:F2} s |");
    Console.WriteLine($"| process {chunks:N0} chunks, {consumers} WebSocket consumers, reserve {reserve} | {processTime.TotalSeconds:F2} s |");
    Console.WriteLine($"| chunks/s | {chunks / processTime.TotalSeconds:N0} |");
    Console.WriteLine($"| operations/s | {(double)chunks * ops / processTime.TotalSeconds:N0} |");
    Console.WriteLine($"| results streamed ({lines:N0} lines) | {resultsTime.TotalSeconds:F2} s |");
    return 0;
}
finally
{
    if (server is not null) await server.DisposeAsync();
    try { Directory.Delete(directory, recursive: true); } catch (IOException) { }
    if (postgres is not null && server is not null)
    {
        await using var connection = new Npgsql.NpgsqlConnection(postgres);
        await connection.OpenAsync();
        await using var drop = new Npgsql.NpgsqlCommand($"DROP SCHEMA IF EXISTS \"{schema}\" CASCADE", connection);
        await drop.ExecuteNonQueryAsync();
    }
}

static string RuntimeInformationText() => System.Runtime.InteropServices.RuntimeInformation.FrameworkDescription;

static async Task<(long Id, long Bytes)> SubmitAsync(HttpClient http, string queue, int chunks, int ops)
{
    using var content = new NdjsonContent(queue, chunks, ops);
    using var response = await http.PostAsync("/v1/submissions", content);
    var text = await response.Content.ReadAsStringAsync();
    if ((int)response.StatusCode != 201) throw new InvalidOperationException($"submit answered {(int)response.StatusCode}: {text}");
    using var created = JsonDocument.Parse(text);
    return (created.RootElement.GetProperty("id").GetInt64(), content.BytesWritten);
}

// One consumer: reserve a batch, add the amounts up, send every complete, then read their acks; until nothing is left.
static async Task<int> ConsumeAsync(Uri server, string queue, int reserve, int ops)
{
    using var socket = new ClientWebSocket();
    await socket.ConnectAsync(new UriBuilder(server) { Scheme = "ws", Path = "/v1/consume" }.Uri, CancellationToken.None);
    var done = 0;
    var buffer = new MemoryStream();
    var receive = new byte[64 * 1024];
    while (true)
    {
        await Send(socket, $$"""{"type":"reserve","queue":"{{queue}}","max":{{reserve}},"wait_ms":200}""");
        using var reply = await Receive(socket, buffer, receive);
        var chunkList = reply.RootElement.GetProperty("chunks");
        if (chunkList.GetArrayLength() == 0) return done;
        foreach (var chunk in chunkList.EnumerateArray())
        {
            long sum = 0;
            foreach (var op in chunk.GetProperty("data").GetProperty("ops").EnumerateArray()) sum += op.GetProperty("amount").GetInt64();
            await Send(socket, $$"""
                {"type":"complete","submission_id":{{chunk.GetProperty("submission_id").GetInt64()}},"index":{{chunk.GetProperty("index").GetInt64()}},"lease_token":"{{chunk.GetProperty("lease_token").GetString()}}","result":{"sum":{{sum}} },"operations":{{ops}} }
                """);
        }
        for (var i = 0; i < chunkList.GetArrayLength(); i++)
        {
            using var ack = await Receive(socket, buffer, receive);
            if (ack.RootElement.GetProperty("type").GetString() != "ack") throw new InvalidOperationException(ack.RootElement.GetRawText());
        }
        done += chunkList.GetArrayLength();
    }

    static Task Send(ClientWebSocket socket, string json) =>
        socket.SendAsync(Encoding.UTF8.GetBytes(json), WebSocketMessageType.Text, endOfMessage: true, CancellationToken.None);

    static async Task<JsonDocument> Receive(ClientWebSocket socket, MemoryStream buffer, byte[] receive)
    {
        while (true)
        {
            buffer.SetLength(0);
            WebSocketReceiveResult result;
            do
            {
                result = await socket.ReceiveAsync(receive, CancellationToken.None);
                buffer.Write(receive, 0, result.Count);
            } while (!result.EndOfMessage);
            var document = JsonDocument.Parse(buffer.ToArray());
            if (document.RootElement.GetProperty("type").GetString() != "ping") return document;
            document.Dispose();
        }
    }
}

/// <summary>The submission as NDJSON, generated line by line while it is sent.</summary>
internal sealed class NdjsonContent : HttpContent
{
    private readonly string _queue;
    private readonly int _chunks;
    private readonly int _ops;

    public NdjsonContent(string queue, int chunks, int ops)
    {
        (_queue, _chunks, _ops) = (queue, chunks, ops);
        Headers.ContentType = new MediaTypeHeaderValue("application/x-ndjson");
    }

    public long BytesWritten { get; private set; }

    protected override async Task SerializeToStreamAsync(Stream stream, System.Net.TransportContext? context)
    {
        var line = new StringBuilder(64 * 1024);
        line.Append($$"""{"queue":"{{_queue}}","chunk_size":{{_ops}} }""").Append('\n');
        for (var chunk = 0L; chunk < _chunks; chunk++)
        {
            line.Append("""{"data":{"ops":[""");
            for (var op = 0; op < _ops; op++)
            {
                if (op > 0) line.Append(',');
                var n = chunk * _ops + op;
                line.Append("{\"id\":").Append(n).Append(",\"amount\":").Append(n % 1000).Append('}');
            }
            line.Append("]}}\n");
            if (line.Length > 32 * 1024 || chunk == _chunks - 1)
            {
                var bytes = Encoding.UTF8.GetBytes(line.ToString());
                await stream.WriteAsync(bytes);
                BytesWritten += bytes.Length;
                line.Clear();
            }
        }
        if (line.Length > 0)
        {
            var rest = Encoding.UTF8.GetBytes(line.ToString());
            await stream.WriteAsync(rest);
            BytesWritten += rest.Length;
        }
    }

    protected override bool TryComputeLength(out long length)
    {
        length = 0;
        return false;
    }
}
