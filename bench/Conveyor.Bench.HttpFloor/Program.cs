using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.Logging;

// What loopback HTTP costs on this machine, without Conveyor: Kestrel configured as `conveyor serve` is (slim builder,
// minimal APIs), answering the enqueue route after reading the body, with no store behind it. Run the ordinary bench
// against it to get the ceiling for single-request workloads:
//   dotnet run -c Release --project bench/Conveyor.Bench.HttpFloor -- --port 5099 &
//   dotnet bench/Conveyor.Bench/bin/Release/net10.0/conveyor-bench.dll --server http://127.0.0.1:5099 --workload single
var port = args.Length >= 2 && args[0] == "--port" ? int.Parse(args[1], System.Globalization.CultureInfo.InvariantCulture) : 5099;
var builder = WebApplication.CreateSlimBuilder();
builder.Logging.ClearProviders();
builder.WebHost.UseUrls($"http://127.0.0.1:{port}");
var app = builder.Build();
long nextId = 0;
var answer = "{\"id\":0,\"state\":\"available\"}"u8.ToArray();
app.MapGet("/healthz", () => Results.Text("ok"));
app.MapPost("/v1/queues/{queue}/jobs", async (HttpContext context) =>
{
    // Read the body as the server does, then answer a fixed small job: the work a real enqueue adds is what is left out.
    var buffer = new byte[4096];
    while (await context.Request.Body.ReadAsync(buffer) > 0) { }
    Interlocked.Increment(ref nextId);
    context.Response.StatusCode = 201;
    context.Response.ContentType = "application/json";
    await context.Response.Body.WriteAsync(answer);
});
Console.WriteLine($"HTTP floor listening on http://127.0.0.1:{port}");
await app.RunAsync();
