/* Swagger UI in Vietnamese for Khối staff. Swagger UI has no translations of its own: this script, served by the
 * service itself (no CDN, works on closed networks), replaces its fixed English words in the page as they appear,
 * and turns a refused login into the service's own Vietnamese explanation (RFC 6749 error_description). */
(function () {
  "use strict";

  var WORDS = {
    "Authorize": "Đăng nhập",
    "Authorized": "Đã đăng nhập",
    "Available authorizations": "Các cách đăng nhập",
    "Logout": "Đăng xuất",
    "Close": "Đóng",
    "Cancel": "Hủy",
    "Clear": "Xóa kết quả",
    "Reset": "Đặt lại",
    "Hide": "Ẩn",
    "Try it out": "Thử gọi",
    "Execute": "Gửi yêu cầu",
    "Parameters": "Tham số",
    "No parameters": "Không có tham số",
    "Request body": "Nội dung yêu cầu",
    "Responses": "Các phản hồi",
    "Response body": "Nội dung phản hồi",
    "Response headers": "Tiêu đề phản hồi",
    "Server response": "Phản hồi của máy chủ",
    "Request URL": "Địa chỉ yêu cầu",
    "Request duration": "Thời gian xử lý",
    "Curl": "Lệnh curl",
    "Details": "Chi tiết",
    "Download": "Tải xuống",
    "Code": "Mã",
    "Description": "Mô tả",
    "Name": "Tên",
    "Links": "Liên kết",
    "No links": "Không có liên kết",
    "Media type": "Kiểu dữ liệu",
    "Controls Accept header.": "Quyết định tiêu đề Accept.",
    "Example Value": "Giá trị mẫu",
    "Examples": "Các ví dụ",
    "Schema": "Lược đồ",
    "Schemas": "Các lược đồ",
    "Send empty value": "Gửi giá trị rỗng",
    "Undocumented": "Không có trong tài liệu",
    "Successful Response": "Thành công",
    "Validation Error": "Dữ liệu không hợp lệ",
    "Errors": "Lỗi",
    "Auth error": "Lỗi đăng nhập",
    "Expand all": "Mở tất cả",
    "Collapse all": "Thu gọn tất cả",
    "Expand operation": "Mở thao tác",
    "Collapse operation": "Thu gọn thao tác",
    "Copy to clipboard": "Sao chép",
    "Filter by tag": "Lọc theo nhóm",
    "Failed to load API definition.": "Không tải được mô tả API.",
    "Failed to fetch": "Không kết nối được máy chủ",
    "Flow:": "Cách cấp mã:",
    "Token URL:": "Địa chỉ cấp mã:",
    "Scopes:": "Phạm vi:",
    "username:": "Tên đăng nhập:",
    "password:": "Mật khẩu:",
    "client_id:": "client_id (chỉ cho hệ thống):",
    "client_secret:": "client_secret (chỉ cho hệ thống):",
    "Client credentials location:": "Gửi thông tin hệ thống qua:",
    "Authorization header": "Tiêu đề Authorization",
    "Basic auth header": "Tiêu đề Basic",
    "Value:": "Giá trị:",
    "Default": "Mặc định",
    "Field": "Trường",
    "Extensions": "Mở rộng",
    "required": "bắt buộc",
    "deprecated": "không còn dùng",
    "Scopes are used to grant an application different levels of access to data on behalf of the end user. Each API may declare one or more scopes.":
      "Phạm vi (scope) cho phép một ứng dụng truy cập dữ liệu ở các mức khác nhau thay cho người dùng. Dịch vụ này không dùng phạm vi: quyền do vai trò của tài khoản quyết định.",
    "API requires the following scopes. Select which ones you want to grant to Swagger UI.":
      "API yêu cầu các phạm vi sau. Chọn phạm vi muốn cấp cho Swagger UI.",
    "Loading...": "Đang tải...",
  };
  // A refused login without error_description (e.g. the service could not be reached): Swagger UI's own words.
  var LOGIN_ERRORS = {
    "Error: Unauthorized": "Sai tên đăng nhập hoặc mật khẩu.",
    "Error: Too Many Requests": "Đăng nhập sai quá nhiều lần, vui lòng thử lại sau.",
    "Error: Unprocessable Entity": "Thông tin đăng nhập không hợp lệ.",
    "Error: Unprocessable Content": "Thông tin đăng nhập không hợp lệ.",
    "TypeError: Failed to fetch": "Không kết nối được máy chủ.",
  };
  var ATTRIBUTES = ["title", "aria-label", "placeholder"];

  // Swagger UI reports a refused login as "Error: Unauthorized, error: invalid_grant, description: <text>".
  var LOGIN_ERROR = /^(?:Type)?Error: [^,]*(?:, error: [^,]*)?(?:, description: ([\s\S]*))?$/;

  function translated(text) {
    var key = text.trim();
    if (!key) return null;
    var vi = WORDS[key];
    if (vi !== undefined) return text.replace(key, vi);
    var login = LOGIN_ERROR.exec(key);
    if (login) return login[1] || LOGIN_ERRORS[key.split(",")[0]] || null;
    return null;
  }

  function setText(element, value) {
    // Change React's own text nodes in place (never replace them), so later renders still find them.
    var nodes = Array.prototype.filter.call(element.childNodes, function (n) {
      return n.nodeType === Node.TEXT_NODE;
    });
    if (!nodes.length) return;
    nodes[0].nodeValue = value;
    for (var i = 1; i < nodes.length; i++) nodes[i].nodeValue = "";
  }

  function fixErrors(root) {
    // The login dialog titles its error "auth error" in three text nodes (source, space, level).
    var titles = root.querySelectorAll(".auth-container .errors b");
    Array.prototype.forEach.call(titles, function (title) {
      title.style.textTransform = "none";
      if (title.textContent !== "Lỗi đăng nhập:") setText(title, "Lỗi đăng nhập:");
    });
  }

  function translateNode(node) {
    if (node.nodeType === Node.TEXT_NODE) {
      var vi = translated(node.nodeValue);
      if (vi !== null) node.nodeValue = vi;
      return;
    }
    if (node.nodeType !== Node.ELEMENT_NODE) return;
    translateAttributes(node);
    if (node.tagName === "INPUT" && (node.type === "button" || node.type === "submit")) {
      var label = translated(node.value || "");
      if (label) node.value = label;
    }
    var walker = document.createTreeWalker(node, NodeFilter.SHOW_TEXT | NodeFilter.SHOW_ELEMENT);
    var current = walker.nextNode();
    while (current) {
      if (current.nodeType === Node.TEXT_NODE) {
        var text = translated(current.nodeValue);
        if (text !== null) current.nodeValue = text;
      } else {
        translateAttributes(current);
      }
      current = walker.nextNode();
    }
  }

  function translateAttributes(element) {
    ATTRIBUTES.forEach(function (name) {
      var value = element.getAttribute(name);
      var vi = value && translated(value);
      if (vi) element.setAttribute(name, vi);
    });
  }

  function start() {
    document.documentElement.lang = "vi";
    translateNode(document.body);
    fixErrors(document);
    new MutationObserver(function (records) {
      records.forEach(function (record) {
        if (record.type === "characterData") {
          translateNode(record.target);
        } else if (record.type === "attributes") {
          translateAttributes(record.target);
        } else {
          Array.prototype.forEach.call(record.addedNodes, translateNode);
        }
      });
      fixErrors(document);
    }).observe(document.body, {
      childList: true,
      subtree: true,
      characterData: true,
      attributes: true,
      attributeFilter: ATTRIBUTES,
    });
  }

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", start);
  } else {
    start();
  }
})();
