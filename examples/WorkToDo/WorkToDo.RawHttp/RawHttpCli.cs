using System.CommandLine;
using System.CommandLine.Help;
using System.Globalization;
using System.Net.Sockets;
using System.Text;

namespace WorkToDo.RawHttp;

/// <summary>
/// <c>worktodo-raw</c>: HTTP without an HTTP library. Opens a TCP connection, writes the request line and headers by hand
/// (<c>Connection: close</c>, so the server ends the response by closing), reads until end of stream and prints the bytes
/// as they came: status line, headers, blank line, body (chunk sizes included if the server chunked it).
/// Exit codes: 0 a response arrived (whatever its status), 1 no connection or no response, 2 invalid command line.
/// </summary>
public sealed class RawHttpCli(TextWriter output, TextWriter error)
{
    public const int Success = 0;
    public const int Failure = 1;
    public const int Usage = 2;

    public static RawHttpCli ForConsole() => new(Console.Out, Console.Error);

    public async Task<int> RunAsync(IReadOnlyList<string> args, CancellationToken cancellationToken = default)
    {
        var url = new Argument<string>("url") { Description = "http://host:port/path?query, e.g. http://127.0.0.1:5090/work/1" };
        var method = new Option<string>("--method", "-X") { Description = "GET (default) or POST (sent with an empty body).", DefaultValueFactory = _ => "GET" };
        method.AcceptOnlyFromAmong("GET", "POST");
        var timeout = new Option<int>("--timeout-ms") { Description = "Give up after this long (default 10000).", DefaultValueFactory = _ => 10_000 };
        var root = new RootCommand("Sends one hand-written HTTP/1.1 request over a raw TCP socket and prints the raw response.") { url, method, timeout };

        var parse = root.Parse(args);
        if (parse.Errors.Count > 0) return await UsageAsync(parse.Errors[0].Message);
        if (parse.Action is HelpAction) return await parse.InvokeAsync(new InvocationConfiguration { Output = output, Error = error }, cancellationToken);
        var text = parse.GetRequiredValue(url);
        if (!Uri.TryCreate(text, UriKind.Absolute, out var uri) || uri.Scheme != "http")
            return await UsageAsync($"The url must be a plain http:// address (no TLS here), such as http://127.0.0.1:5090/work/1, not '{text}'.");
        if (parse.GetValue(timeout) is var ms && ms < 1) return await UsageAsync($"--timeout-ms must be a positive whole number, not {ms}.");

        using var deadline = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        deadline.CancelAfter(ms);
        try
        {
            var response = await SendAsync(uri, parse.GetRequiredValue(method), deadline.Token);
            if (response.Length == 0) return await FailAsync($"{uri.Authority} closed the connection without answering.");
            // Headers are ASCII and the API's bodies UTF-8 JSON, so decoding as UTF-8 prints them exactly as sent.
            await output.WriteAsync(Encoding.UTF8.GetString(response));
            await output.FlushAsync(cancellationToken);
            return Success;
        }
        catch (SocketException e)
        {
            return await FailAsync($"could not connect to {uri.Authority}: {e.Message}.");
        }
        catch (OperationCanceledException) when (!cancellationToken.IsCancellationRequested)
        {
            return await FailAsync($"no complete response from {uri.Authority} within {ms} ms.");
        }
        catch (IOException e)
        {
            return await FailAsync($"the connection to {uri.Authority} failed: {e.Message}");
        }
    }

    /// <summary>The request as it goes on the wire: CRLF line ends, Host header (required by HTTP/1.1), no body.</summary>
    public static string BuildRequest(Uri uri, string method)
    {
        var request = new StringBuilder();
        request.Append(CultureInfo.InvariantCulture, $"{method} {uri.PathAndQuery} HTTP/1.1\r\n");
        request.Append(CultureInfo.InvariantCulture, $"Host: {uri.Authority}\r\n");
        request.Append("User-Agent: worktodo-raw/1.0\r\n");
        request.Append("Accept: */*\r\n");
        if (method == "POST") request.Append("Content-Length: 0\r\n");
        request.Append("Connection: close\r\n");
        request.Append("\r\n");
        return request.ToString();
    }

    private static async Task<byte[]> SendAsync(Uri uri, string method, CancellationToken cancellationToken)
    {
        using var socket = new Socket(SocketType.Stream, ProtocolType.Tcp);
        await socket.ConnectAsync(uri.DnsSafeHost, uri.Port, cancellationToken);
        await using var stream = new NetworkStream(socket, ownsSocket: false);
        await stream.WriteAsync(Encoding.ASCII.GetBytes(BuildRequest(uri, method)), cancellationToken);
        await stream.FlushAsync(cancellationToken);
        using var received = new MemoryStream();
        await stream.CopyToAsync(received, cancellationToken); // until the server closes: we asked for Connection: close
        return received.ToArray();
    }

    private async Task<int> FailAsync(string message)
    {
        await error.WriteLineAsync($"error: {message}");
        return Failure;
    }

    private async Task<int> UsageAsync(string message)
    {
        await error.WriteLineAsync($"error: {message}");
        await error.WriteLineAsync("Try 'worktodo-raw --help'.");
        return Usage;
    }
}
