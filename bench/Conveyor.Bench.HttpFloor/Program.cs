using Conveyor.Bench.HttpFloor;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.Logging;

// What loopback HTTP costs on this machine, without Conveyor: Kestrel configured as `conveyor serve` is (slim builder,
// minimal APIs), answering the enqueue route after reading the body, with no store behind it. Run the ordinary bench
// against it to get the ceiling for single-request workloads:
//   dotnet run -c Release --project bench/Conveyor.Bench.HttpFloor -- --port 5099 &
//   dotnet bench/Conveyor.Bench/bin/Release/net10.0/conveyor-bench.dll --server http://127.0.0.1:5099 --workload single
// With --durable DIR (a log file flushed with fdatasync), --sqlite DIR (a log table in SQLite) or --postgres CS (a log
// table) it is instead the least a durable queue can do (DurableFloor), to run the W1/W2/W3 workloads against; with
// --postgres-queue CS, the least a queue whose jobs live as PostgreSQL rows can do (PostgresQueueFloor).
var port = 5099;
string? durableDirectory = null, sqliteDirectory = null, postgres = null, postgresQueue = null;
for (var i = 0; i < args.Length; i += 2)
{
    if (i + 1 == args.Length)
    {
        Console.Error.WriteLine($"conveyor-http-floor: {args[i]} needs a value");
        return 2;
    }
    switch (args[i])
    {
        case "--port" when int.TryParse(args[i + 1], System.Globalization.CultureInfo.InvariantCulture, out port) && port is >= 0 and <= 65535: break;
        case "--port": Console.Error.WriteLine($"conveyor-http-floor: --port needs a port number, not '{args[i + 1]}'"); return 2;
        case "--durable": durableDirectory = args[i + 1]; break;
        case "--sqlite": sqliteDirectory = args[i + 1]; break;
        case "--postgres": postgres = args[i + 1]; break;
        case "--postgres-queue": postgresQueue = args[i + 1]; break;
        default: Console.Error.WriteLine($"conveyor-http-floor: unknown option {args[i]} (use --port N, --durable DIR, --sqlite DIR, --postgres CS, --postgres-queue CS)"); return 2;
    }
}
if (new[] { durableDirectory, sqliteDirectory, postgres, postgresQueue }.Count(option => option is not null) > 1)
{
    Console.Error.WriteLine("conveyor-http-floor: give one of --durable DIR, --sqlite DIR, --postgres CS, --postgres-queue CS");
    return 2;
}
// No appsettings.json and no watching of the working directory (a watcher there turns each write under it into file
// events to read; the server does the same, see docs/benchmarks.md).
var builder = WebApplication.CreateSlimBuilder(new WebApplicationOptions
{
    ContentRootPath = AppContext.BaseDirectory,
    Args = ["--hostBuilder:reloadConfigOnChange=false"],
});
builder.Logging.ClearProviders();
builder.WebHost.UseUrls($"http://127.0.0.1:{port}");
var app = builder.Build();
app.MapGet("/healthz", () => Results.Text("ok"));
using FloorLog? log = postgres is not null ? new PostgresFloorLog(postgres)
    : durableDirectory is not null ? new FileFloorLog(Path.Combine(Directory.CreateDirectory(durableDirectory).FullName, "floor.log"))
    : sqliteDirectory is not null ? new SqliteFloorLog(Path.Combine(Directory.CreateDirectory(sqliteDirectory).FullName, "floor.db"))
    : null;
using var postgresQueueFloor = postgresQueue is null ? null : new PostgresQueueFloor(postgresQueue);
if (log is not null)
{
    new DurableFloor(log).Map(app);
}
else if (postgresQueueFloor is not null)
{
    postgresQueueFloor.Map(app);
}
else
{
    var answer = "{\"id\":0,\"state\":\"available\"}"u8.ToArray();
    app.MapPost("/v1/queues/{queue}/jobs", async (HttpContext context) =>
    {
        // Read the body as the server does, then answer a fixed small job: the work a real enqueue adds is what is left out.
        var buffer = new byte[4096];
        while (await context.Request.Body.ReadAsync(buffer) > 0) { }
        context.Response.StatusCode = 201;
        context.Response.ContentType = "application/json";
        await context.Response.Body.WriteAsync(answer);
    });
}
Console.WriteLine($"HTTP floor{(log is null && postgresQueueFloor is null ? "" : " (durable)")} listening on http://127.0.0.1:{port}");
await app.RunAsync();
return 0;
